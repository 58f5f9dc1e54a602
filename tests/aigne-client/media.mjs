// Audio and video as an AIGNE application meets them: the published
// `AIGNEHubVideoModel` (`@aigne/aigne-hub`, unchanged) generating a video, a
// failed generation, and an audio round trip through AIGNE Hub's audio routes
// (`/api/v2/audio/speech`, then `/api/v2/audio/transcriptions` of the audio
// it returned), called as AIGNE apps call them (the package has no audio model).
// Prints one `MEDIA {json}` line with what was billed, for the caller to check
// against the ledger.
//
//   HUB_URL, HUB_KEY                              (required)
//   HUB_VIDEO_MODEL, HUB_VIDEO_SECONDS            a video model and the seconds to ask for
//   HUB_EXPECT_VIDEO_B64                          the mock's video bytes, base64
//   HUB_FAIL_VIDEO_MODEL                          a video model whose generation fails
//   HUB_SPEECH_MODEL, HUB_TRANSCRIBE_MODEL        audio models
//   HUB_TEST_TIMEOUT_MS                           bound on every awaited call (default 30000)

import assert from "node:assert/strict";
import { test } from "node:test";

import { AIGNEHubVideoModel } from "@aigne/aigne-hub";

const env = process.env;
const HUB_URL = (env.HUB_URL || "").replace(/\/+$/, "");
const HUB_KEY = env.HUB_KEY || "";
const TIMEOUT_MS = Number(env.HUB_TEST_TIMEOUT_MS || 30_000);
const TEST_OPTS = { timeout: 4 * TIMEOUT_MS };
for (const name of ["HUB_VIDEO_MODEL", "HUB_VIDEO_SECONDS", "HUB_EXPECT_VIDEO_B64", "HUB_FAIL_VIDEO_MODEL", "HUB_SPEECH_MODEL", "HUB_TRANSCRIBE_MODEL"]) {
  if (!HUB_URL || !HUB_KEY || !env[name]) {
    console.error(`HUB_URL, HUB_KEY and ${name} must be set`);
    process.exit(2);
  }
}
for (const name of ["BLOCKLET_AIGNE_API_PROVIDER", "BLOCKLET_AIGNE_API_MODEL", "BLOCKLET_AIGNE_API_URL", "BLOCKLET_AIGNE_API_CREDENTIAL", "AIGNE_HUB_API_KEY"]) {
  delete env[name];
}
env.AIGNE_HUB_API_URL = HUB_URL;

async function within(label, work) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  try {
    return await Promise.race([work(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const videoModel = (model) => new AIGNEHubVideoModel({ baseURL: HUB_URL, apiKey: HUB_KEY, model });
const billed = {};

test("AIGNEHubVideoModel: the video, its seconds and its credits", TEST_OPTS, async () => {
  const model = videoModel(env.HUB_VIDEO_MODEL);
  const result = await within("video", () =>
    model.invoke({ prompt: "A lighthouse at dawn", seconds: env.HUB_VIDEO_SECONDS, outputFileType: "file" }),
  );
  assert.equal(result.videos.length, 1, JSON.stringify(result.videos));
  assert.equal(result.videos[0].type, "file");
  assert.equal(result.videos[0].data, env.HUB_EXPECT_VIDEO_B64, "the provider's video, byte for byte");
  assert.equal(result.seconds, Number(env.HUB_VIDEO_SECONDS));
  assert.equal(typeof result.usage.aigneHubCredits, "number");
  billed.video = result.usage.aigneHubCredits;
});

test("AIGNEHubVideoModel: a failed generation is an error with the provider's reason", TEST_OPTS, async () => {
  const error = await within("failed video", () =>
    videoModel(env.HUB_FAIL_VIDEO_MODEL).invoke({ prompt: "x", seconds: "4", outputFileType: "file" }).then(
      () => assert.fail("the failed video succeeded"),
      (e) => e,
    ),
  );
  assert.match(error.message, /video generation failed/i, error.message);
});

test("audio round trip: speech, then its transcript, through /api/v2/audio", TEST_OPTS, async () => {
  const headers = { authorization: `Bearer ${HUB_KEY}`, "x-aigne-hub-client-did": "media-test" };
  const text = "Hello from the lighthouse";
  const speech = await within("speech", () =>
    fetch(`${HUB_URL}/api/v2/audio/speech`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ model: env.HUB_SPEECH_MODEL, input: text, voice: "alloy" }),
    }),
  );
  assert.equal(speech.status, 200, await speech.clone().text());
  assert.equal(speech.headers.get("content-type"), "audio/mpeg");
  const audio = await speech.arrayBuffer();
  const form = new FormData();
  form.append("model", env.HUB_TRANSCRIBE_MODEL);
  form.append("file", new Blob([audio], { type: "audio/mpeg" }), "speech.mp3");
  const transcript = await within("transcription", () =>
    fetch(`${HUB_URL}/api/v2/audio/transcriptions`, { method: "POST", headers, body: form }),
  );
  const body = await transcript.json();
  assert.equal(transcript.status, 200, JSON.stringify(body));
  assert.equal(body.text, text, "the transcript of the speech is its text");
  billed.speech = speech.headers.get("x-hub-credits");
  billed.transcription = transcript.headers.get("x-hub-credits");
  console.log(`MEDIA ${JSON.stringify(billed)}`);
});
