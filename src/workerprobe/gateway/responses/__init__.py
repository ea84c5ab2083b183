"""The Responses and Conversations APIs over the chat core."""
