"""The reference gateway: OpenAI's API over Workers AI (see `app.create_app`)."""

from workerprobe.gateway.app import create_app

__all__ = ["create_app"]
