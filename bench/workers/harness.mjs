// The wrapper entry of a public OpenAI-to-Workers-AI Worker run offline under `wrangler dev`: the
// Worker's own entry, imported unmodified, gets a fake `AI` binding that answers as `env.AI.run`
// does, from the workerprobe emulator of the Workers AI REST API (text, streams as the bytes of
// their events, embeddings; errors thrown as "5007: No such model ..."), and its calls to
// api.cloudflare.com (the model catalogue, the REST API) go to the emulator too. Built by
// bench/foreign_workers.py, which replaces WORKER_ENTRY with the Worker's entry.
import worker from "WORKER_ENTRY";

let emulator = null; // the emulator's root, known at the first request
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const request = new Request(input, init);
  const url = new URL(request.url);
  if (emulator && url.hostname === "api.cloudflare.com") {
    return realFetch(new Request(`${emulator}${url.pathname}${url.search}`, request));
  }
  return realFetch(request);
};

function binding(env) {
  const base = `${env.WORKERPROBE_EMULATOR}/client/v4/accounts/workerprobe/ai/run/`;
  return {
    async run(model, inputs = {}, options = {}) {
      const answer = await fetch(base + model, {
        method: "POST",
        headers: { authorization: `Bearer ${env.WORKERPROBE_EMULATOR_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(inputs),
      });
      const type = answer.headers.get("content-type") || "";
      if (answer.ok && type.includes("text/event-stream")) {
        return answer.body; // a ReadableStream of `data: {...}` events, as the binding streams
      }
      let data = null;
      try {
        data = await answer.json();
      } catch {
        data = null;
      }
      if (!answer.ok || !data || data.success === false) {
        const first = (data && data.errors && data.errors[0]) || { code: 3000, message: `HTTP ${answer.status}` };
        throw new Error(`${first.code}: ${first.message}`);
      }
      return data.result;
    },
  };
}

export default {
  async fetch(request, env, ctx) {
    emulator = env.WORKERPROBE_EMULATOR;
    const handler = worker.fetch ? worker : worker.default;
    return handler.fetch(request, { ...env, AI: binding(env) }, ctx);
  },
};
