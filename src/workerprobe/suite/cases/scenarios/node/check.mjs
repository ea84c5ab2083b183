// The official OpenAI Node SDK against the target under test: one check per endpoint family,
// each printing one JSON line {family, ok, error}. Usage:
//   OPENAI_BASE_URL=... OPENAI_API_KEY=... node check.mjs chat embeddings ...
// WORKERPROBE_CHAT_MODEL and WORKERPROBE_EMBEDDING_MODEL name the models (test_node_sdk.py passes
// the suite's); WORKERPROBE_RUN tags what is created (deleted again at the end of each check).
import OpenAI from "openai";

// Every answer bounded as the Python side's (suite/bounds.py): in bytes (64 MB, an event stream
// 4 MB: each event becomes an object many times its size) and in time (60 s for the whole
// exchange, the body's last byte included, not only until the headers).
const MAX_BYTES = Number(process.env.WORKERPROBE_MAX_ANSWER_BYTES || 64 * 1024 * 1024);
const MAX_STREAM_BYTES = Math.min(MAX_BYTES, Number(process.env.WORKERPROBE_MAX_STREAM_BYTES || 4 * 1024 * 1024));
const DEADLINE_MS = 60_000;

async function boundedFetch(url, init = {}) {
  const deadline = AbortSignal.timeout(DEADLINE_MS);
  const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
  const response = await fetch(url, { ...init, signal });
  if (!response.body) return response;
  const stream = (response.headers.get("content-type") || "").includes("event-stream");
  const cap = stream ? MAX_STREAM_BYTES : MAX_BYTES;
  let read = 0;
  const counted = response.body.pipeThrough(new TransformStream({
    transform(chunk, controller) {
      read += chunk.byteLength;
      if (read > cap) controller.error(new Error(`the answer was larger than ${cap} bytes`));
      else controller.enqueue(chunk);
    },
  }));
  return new Response(counted, { status: response.status, statusText: response.statusText, headers: response.headers });
}

const client = new OpenAI({ maxRetries: 0, timeout: DEADLINE_MS, fetch: boundedFetch });
const CHAT = process.env.WORKERPROBE_CHAT_MODEL;
const EMBED = process.env.WORKERPROBE_EMBEDDING_MODEL;
if (!CHAT || !EMBED) throw new Error("WORKERPROBE_CHAT_MODEL and WORKERPROBE_EMBEDDING_MODEL must be set");
const metadata = { workerprobe_run: process.env.WORKERPROBE_RUN || "node" };
const QUESTION = [{ role: "user", content: "What is 3 * 10? Answer briefly." }];
const WEATHER = {
  type: "function",
  function: {
    name: "get_weather", description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

const checks = {
  async models() {
    const page = await client.models.list();
    expect(page.data.length > 0, "models.list() returned no model");
  },
  async chat() {
    const plain = await client.chat.completions.create({ model: CHAT, messages: QUESTION, max_tokens: 16 });
    expect(plain.choices[0]?.message?.content, "no content in a plain completion");
    expect(["stop", "length"].includes(plain.choices[0].finish_reason), `finish_reason ${plain.choices[0].finish_reason}`);
    const stream = await client.chat.completions.create({
      model: CHAT, messages: QUESTION, max_tokens: 16, stream: true, stream_options: { include_usage: true },
    });
    let text = "";
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text, "the stream carried no text");
    expect(usage, "include_usage: no usage chunk");
  },
  async embeddings() {
    // The SDK asks for base64 by default and decodes it itself.
    const result = await client.embeddings.create({ model: EMBED, input: ["a harbour", "a river"] });
    expect(result.data.length === 2, `${result.data.length} embeddings for 2 inputs`);
    expect(result.data.every((d) => Array.isArray(d.embedding) && d.embedding.length > 0 && Number.isFinite(d.embedding[0])),
      "an embedding did not decode to numbers");
  },
  async responses() {
    const plain = await client.responses.create({ model: CHAT, input: "What is 3 * 10? Answer briefly.", max_output_tokens: 32 });
    expect(plain.output_text, "no output_text in a plain response");
    expect(["completed", "incomplete"].includes(plain.status), `status ${plain.status}`);
    expect(plain.usage && plain.usage.total_tokens === plain.usage.input_tokens + plain.usage.output_tokens, "usage missing or wrong");
    const stream = await client.responses.create({
      model: CHAT, input: "Answer with exactly one word: heron", max_output_tokens: 32, stream: true,
    });
    let text = "";
    const kinds = [];
    for await (const event of stream) {
      kinds.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
    }
    const terminal = kinds.filter((k) => ["response.completed", "response.incomplete", "response.failed"].includes(k));
    expect(terminal.length === 1 && kinds.at(-1) === terminal[0], `terminal events ${JSON.stringify(terminal)}`);
    expect(text.toLowerCase().includes("heron"), `the streamed text ${JSON.stringify(text.slice(0, 60))}`);
    // The stream helper (finalResponse) as the Agents SDK uses it
    const helper = client.responses.stream({ model: CHAT, input: "Answer with exactly one word: ibis", max_output_tokens: 32 });
    const final = await helper.finalResponse();
    expect(final.output_text.toLowerCase().includes("ibis"), `the helper's final text ${JSON.stringify(final.output_text.slice(0, 60))}`);
    const cut = await client.responses.create({
      model: CHAT, input: "Write a very long essay of at least 3000 words about Rome.", max_output_tokens: 16,
    });
    expect(cut.status === "incomplete" && cut.incomplete_details?.reason === "max_output_tokens",
      `a cut answer says status ${cut.status}, ${JSON.stringify(cut.incomplete_details)}`);
  },
  async conversations() {
    const conversation = await client.conversations.create({
      metadata, items: [{ type: "message", role: "user", content: "Answer with exactly one word: egret" }],
    });
    try {
      const response = await client.responses.create({
        model: CHAT, conversation: conversation.id, input: "Say it again.", max_output_tokens: 32,
      });
      expect(response.output_text.toLowerCase().includes("egret"), `the conversation did not reach the model: ${JSON.stringify(response.output_text.slice(0, 60))}`);
      const items = [];
      for await (const item of client.conversations.items.list(conversation.id, { order: "asc" })) items.push(item);
      expect(items.length === 3, `the conversation holds ${items.length} items after one response, not 3`);
    } finally {
      await client.conversations.delete(conversation.id);
    }
  },
  async assistants() {
    const made = await client.beta.assistants.create({ model: CHAT, name: "workerprobe node", metadata });
    try {
      const got = await client.beta.assistants.retrieve(made.id);
      expect(got.id === made.id && got.name === "workerprobe node", "retrieve gave another assistant");
      const changed = await client.beta.assistants.update(made.id, { name: "renamed" });
      expect(changed.name === "renamed", "update did not rename");
    } finally {
      await client.beta.assistants.delete(made.id);
    }
  },
  async threads() {
    const thread = await client.beta.threads.create({ metadata, messages: [{ role: "user", content: "hello" }] });
    try {
      await client.beta.threads.messages.create(thread.id, { role: "user", content: "second" });
      const page = await client.beta.threads.messages.list(thread.id, { order: "asc" });
      const texts = page.data.map((m) => m.content[0]?.text?.value);
      expect(JSON.stringify(texts) === JSON.stringify(["hello", "second"]), `messages ${JSON.stringify(texts)}`);
    } finally {
      await client.beta.threads.delete(thread.id);
    }
  },
  async runs() {
    const assistant = await client.beta.assistants.create({ model: CHAT, metadata });
    const thread = await client.beta.threads.create({ metadata, messages: QUESTION });
    try {
      const run = await client.beta.threads.runs.createAndPoll(thread.id, {
        assistant_id: assistant.id, max_completion_tokens: 16,
      }, { pollIntervalMs: 100 });
      expect(["completed", "incomplete"].includes(run.status), `run ended ${run.status}`);
      const reply = (await client.beta.threads.messages.list(thread.id)).data[0];
      expect(reply?.role === "assistant" && reply.content[0]?.text?.value, "no stored reply");
      let deltas = "";
      const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id, max_completion_tokens: 16 });
      stream.on("textDelta", (delta) => { deltas += delta.value ?? ""; });
      const final = await stream.finalRun();
      expect(deltas && ["completed", "incomplete"].includes(final.status), `stream: ${final.status}, text ${JSON.stringify(deltas)}`);
    } finally {
      await client.beta.threads.delete(thread.id);
      await client.beta.assistants.delete(assistant.id);
    }
    // The tool loop: the run names its tool, so any model must call it; the outputs finish the run.
    const tooled = await client.beta.assistants.create({ model: CHAT, metadata, tools: [WEATHER] });
    const asked = await client.beta.threads.create({ metadata, messages: [{ role: "user", content: "What is the weather in Oslo?" }] });
    try {
      const waiting = await client.beta.threads.runs.createAndPoll(asked.id, {
        assistant_id: tooled.id, max_completion_tokens: 64,
        tool_choice: { type: "function", function: { name: "get_weather" } },
      }, { pollIntervalMs: 100 });
      expect(waiting.status === "requires_action", `a run whose tool_choice names get_weather ended ${waiting.status}`);
      const calls = waiting.required_action.submit_tool_outputs.tool_calls;
      const done = await client.beta.threads.runs.submitToolOutputsAndPoll(waiting.id, {
        thread_id: asked.id, tool_outputs: calls.map((call) => ({ tool_call_id: call.id, output: '{"celsius": 3}' })),
      }, { pollIntervalMs: 100 });
      expect(["completed", "incomplete"].includes(done.status), `after the tool outputs the run ended ${done.status}`);
    } finally {
      await client.beta.threads.delete(asked.id);
      await client.beta.assistants.delete(tooled.id);
    }
  },
};

for (const family of process.argv.slice(2)) {
  const check = checks[family];
  try {
    if (!check) throw new Error(`unknown family ${family}`);
    await check();
    console.log(JSON.stringify({ family, ok: true }));
  } catch (error) {
    const name = error?.constructor?.name ?? "Error";
    console.log(JSON.stringify({ family, ok: false, error: `${name}: ${error?.message ?? error}`.slice(0, 400) }));
  }
}
