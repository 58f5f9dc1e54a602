// Runs the published AIGNE Hub client (`@aigne/aigne-hub` + `@aigne/core`), unchanged,
// against a running Hub and checks what an AIGNE application would see.
//
//   HUB_URL          Hub's origin, e.g. http://127.0.0.1:8787            (required)
//   HUB_KEY          a member API key that has credits                  (required)
//   HUB_CHAT_MODEL   chat model, provider/model      (default mock/gpt-mock)
//   HUB_IMAGE_MODEL  image model, provider/model     (default mock/image-mock)
//   HUB_EXPECT_TEXT  the chat model's exact answer   (default "Hello, world!")
//   HUB_POOR_KEY     a member API key with zero credits (the 402 checks are skipped without it)
//   HUB_TEST_TIMEOUT_MS  bound on every awaited call (default 30000)

import assert from "node:assert/strict";
import { test } from "node:test";

import { AIGNE_HUB_BLOCKLET_DID, AIGNEHubChatModel, AIGNEHubImageModel } from "@aigne/aigne-hub";
import { AIAgent, AIGNE, mergeAgentResponseChunk } from "@aigne/core";

const env = process.env;
const HUB_URL = (env.HUB_URL || "").replace(/\/+$/, "");
const HUB_KEY = env.HUB_KEY || "";
const CHAT_MODEL = env.HUB_CHAT_MODEL || "mock/gpt-mock";
const IMAGE_MODEL = env.HUB_IMAGE_MODEL || "mock/image-mock";
const EXPECT_TEXT = env.HUB_EXPECT_TEXT ?? "Hello, world!";
const POOR_KEY = env.HUB_POOR_KEY || "";
const TIMEOUT_MS = Number(env.HUB_TEST_TIMEOUT_MS || 30_000);
const TEST_OPTS = { timeout: 4 * TIMEOUT_MS };

if (!HUB_URL || !HUB_KEY) {
  console.error("HUB_URL and HUB_KEY must be set, e.g. HUB_URL=http://127.0.0.1:8787 HUB_KEY=hub_… npm test");
  process.exit(2);
}

// Only the explicit options below may steer the client: drop the variables it would
// otherwise read, and point the catalogue helper (which reads only the environment) at Hub.
for (const name of [
  "BLOCKLET_AIGNE_API_PROVIDER",
  "BLOCKLET_AIGNE_API_MODEL",
  "BLOCKLET_AIGNE_API_URL",
  "BLOCKLET_AIGNE_API_CREDENTIAL",
  "AIGNE_HUB_API_KEY",
]) {
  delete env[name];
}
env.AIGNE_HUB_API_URL = HUB_URL;

class TimeoutError extends Error {}

/** Resolves like `work`, or rejects once TIMEOUT_MS has passed. */
async function within(label, work) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${label}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  try {
    return await Promise.race([typeof work === "function" ? work() : work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a response stream to its end: the chunks, the streamed text and the merged result. */
async function collect(stream, key = "text") {
  const chunks = [];
  const merged = {};
  let streamed = "";
  for await (const chunk of stream) {
    chunks.push(chunk);
    const piece = chunk?.delta?.text?.[key];
    if (typeof piece === "string") streamed += piece;
    mergeAgentResponseChunk(merged, chunk);
  }
  return { chunks, merged, streamed };
}

/** The error a call throws, whether it fails when invoked or while its stream is read. */
async function errorOf(label, work) {
  try {
    await within(label, work);
  } catch (error) {
    if (error instanceof TimeoutError) throw error;
    return error;
  }
  assert.fail(`${label}: expected an error, but the call succeeded`);
}

const chatModel = (apiKey = HUB_KEY) => new AIGNEHubChatModel({ baseURL: HUB_URL, apiKey, model: CHAT_MODEL });
const imageModel = (apiKey = HUB_KEY) => new AIGNEHubImageModel({ baseURL: HUB_URL, apiKey, model: IMAGE_MODEL });
const ask = { messages: [{ role: "user", content: "Say hello." }] };

// The client sends a model whose provider part names one of its built-in providers
// (e.g. openai/…, or any substring of their class names) to that provider, not to Hub.
for (const [name, model, want] of [
  [CHAT_MODEL, chatModel(), "AIGNEHubChatModel"],
  [IMAGE_MODEL, imageModel(), "AIGNEHubImageModel"],
]) {
  if (model.client.constructor.name !== want) {
    console.error(`${name}: the client would call ${model.client.constructor.name}, not Hub; pick another provider name`);
    process.exit(2);
  }
}

const isPositive = (n) => typeof n === "number" && Number.isFinite(n) && n > 0;
const assertPositive = (n, what) => assert.ok(isPositive(n), `${what} should be a positive number, got ${JSON.stringify(n)}`);

function assertChatUsage(usage, where) {
  assert.ok(usage && typeof usage === "object", `${where}: usage is missing`);
  assertPositive(usage.inputTokens, `${where}: usage.inputTokens`);
  assertPositive(usage.outputTokens, `${where}: usage.outputTokens`);
  assertPositive(usage.aigneHubCredits, `${where}: usage.aigneHubCredits`);
  if (usage.creditPrefix != null) assert.ok(["$", "€", "¥"].includes(usage.creditPrefix), `${where}: usage.creditPrefix`);
}

function assertModelNames(result, expected, where) {
  assert.equal(typeof result.model, "string", `${where}: model should be set`);
  assert.ok(result.model.length > 0, `${where}: model should not be empty`);
  assert.equal(result.modelWithProvider, expected, `${where}: modelWithProvider`);
}

/** The message a client user sees must be the one Hub wrote in {"error":{"message"}}. */
function assertServerMessage(error, where) {
  assert.ok(error instanceof Error, `${where}: expected an Error, got ${error}`);
  assert.ok(error.message.trim().length > 0, `${where}: the error has no message`);
  assert.doesNotMatch(
    error.message,
    /^(Failed to fetch|Fetch |Parse JSON from|Parse response chunk|Component )/,
    `${where}: Hub's error body should be {"error":{"message":…}}; the client only saw: ${error.message}`,
  );
}

function assertNotEnoughCredits(error, where) {
  assertServerMessage(error, where);
  assert.ok(
    error.type === "NOT_ENOUGH" || /credit/i.test(error.message),
    `${where}: expected error.type NOT_ENOUGH or a message about credits, got type=${error.type} message=${error.message}`,
  );
}

test("discovery: /__blocklet__.js?type=json names the AIGNE Hub component", TEST_OPTS, async () => {
  const res = await within("GET /__blocklet__.js", () => fetch(`${HUB_URL}/__blocklet__.js?type=json`));
  assert.equal(res.status, 200);
  const info = await within("discovery body", () => res.json());
  assert.ok(Array.isArray(info.componentMountPoints), "componentMountPoints should be an array");
  const hub = info.componentMountPoints.find((m) => m.did === AIGNE_HUB_BLOCKLET_DID);
  assert.ok(hub, `componentMountPoints should hold did ${AIGNE_HUB_BLOCKLET_DID}`);
  assert.equal(typeof hub.mountPoint, "string");

  const { url, apiKey } = await within("resolve credential", chatModel().credential);
  assert.equal(new URL(url).origin, new URL(HUB_URL).origin);
  assert.match(url, /\/api\/v2\/chat$/);
  assert.equal(apiKey, HUB_KEY);
});

test("chat, not streamed: text, tokens, credits and model names", TEST_OPTS, async () => {
  const result = await within("chat", () => chatModel().invoke(ask));
  assert.equal(result.text, EXPECT_TEXT);
  assertChatUsage(result.usage, "chat");
  assertModelNames(result, CHAT_MODEL, "chat");
});

test("chat, streamed: the deltas add up to the text, the last chunk carries usage and credits", TEST_OPTS, async () => {
  const { chunks, merged, streamed } = await within("streamed chat", async () =>
    collect(await chatModel().invoke(ask, { streaming: true })),
  );
  assert.ok(chunks.length > 0, "the stream should not be empty");
  assert.equal(streamed, EXPECT_TEXT, "concatenated delta.text.text");
  assert.equal(merged.text, EXPECT_TEXT, "merged result text");
  assertChatUsage(merged.usage, "streamed chat");
  assertModelNames(merged, CHAT_MODEL, "streamed chat");
});

test("chat through an AIGNE agent: the context totals the credits", TEST_OPTS, async () => {
  const aigne = new AIGNE({ model: chatModel() });
  try {
    const agent = AIAgent.from({ name: "greeter", instructions: "Greet the user.", inputKey: "message" });
    const context = aigne.newContext();
    const { merged, streamed } = await within("agent", async () =>
      collect(await context.invoke(agent, { message: "Say hello." }, { streaming: true }), "message"),
    );
    assert.equal(streamed, EXPECT_TEXT);
    assert.equal(merged.message, EXPECT_TEXT);
    assertPositive(context.usage.inputTokens, "context.usage.inputTokens");
    assertPositive(context.usage.outputTokens, "context.usage.outputTokens");
    assertPositive(context.usage.aigneHubCredits, "context.usage.aigneHubCredits");
  } finally {
    await aigne.shutdown();
  }
});

test("image: at least one image URL, and credits", TEST_OPTS, async () => {
  const result = await within("image", () => imageModel().invoke({ prompt: "A lighthouse at dawn", outputFileType: "url" }));
  assert.ok(Array.isArray(result.images) && result.images.length > 0, "images should not be empty");
  for (const image of result.images) {
    assert.equal(image.type, "url", `image: ${JSON.stringify(image)}`);
    assert.ok(URL.canParse(image.url), `image url: ${image.url}`);
  }
  assert.ok(result.usage, "image: usage is missing");
  assertPositive(result.usage.aigneHubCredits, "image: usage.aigneHubCredits");
  if (result.modelWithProvider !== undefined) assert.equal(result.modelWithProvider, IMAGE_MODEL);
});

test("catalogue: the package's models() lists the chat and image models with string rates", TEST_OPTS, async () => {
  const matches = (entry, wanted) => `${entry.provider}/${entry.model}` === wanted || entry.model === wanted;

  const chat = await within("chat catalogue", () => AIGNEHubChatModel.models());
  const fromInstance = await within("chat catalogue (instance)", () => chatModel().models());
  assert.deepEqual(fromInstance, chat);
  const entry = chat.find((m) => matches(m, CHAT_MODEL));
  assert.ok(entry, `${CHAT_MODEL} should be listed; got ${chat.map((m) => `${m.provider}/${m.model}`).join(", ")}`);
  assert.equal(entry.type, "chat");
  for (const rate of ["input_credits_per_token", "output_credits_per_token"]) {
    assert.equal(typeof entry[rate], "string", rate);
    assert.ok(Number.isFinite(Number(entry[rate])) && Number(entry[rate]) >= 0, `${rate}: ${entry[rate]}`);
  }
  assert.equal(typeof entry.providerDisplayName, "string");
  if (entry.status != null) assert.equal(entry.status.available, true, "status.available");

  const images = await within("image catalogue", () => AIGNEHubImageModel.models());
  assert.ok(
    images.some((m) => matches(m, IMAGE_MODEL)),
    `${IMAGE_MODEL} should be listed; got ${images.map((m) => `${m.provider}/${m.model}`).join(", ")}`,
  );
});

test("an unknown key is refused with Hub's own message", TEST_OPTS, async () => {
  const bad = `hub_not_a_key_${Date.now()}`;
  assertServerMessage(await errorOf("chat, unknown key", () => chatModel(bad).invoke(ask)), "chat, unknown key");
  assertServerMessage(
    await errorOf("streamed chat, unknown key", async () => collect(await chatModel(bad).invoke(ask, { streaming: true }))),
    "streamed chat, unknown key",
  );
});

test(
  "a key without credits gets NOT_ENOUGH (402)",
  { ...TEST_OPTS, skip: POOR_KEY ? false : "HUB_POOR_KEY is not set" },
  async () => {
    assertNotEnoughCredits(await errorOf("chat, no credits", () => chatModel(POOR_KEY).invoke(ask)), "chat");
    assertNotEnoughCredits(
      await errorOf("streamed chat, no credits", async () =>
        collect(await chatModel(POOR_KEY).invoke(ask, { streaming: true })),
      ),
      "streamed chat",
    );
    assertNotEnoughCredits(
      await errorOf("image, no credits", () => imageModel(POOR_KEY).invoke({ prompt: "x", outputFileType: "url" })),
      "image",
    );
  },
);
