import { describe, expect, it } from 'vitest';
import type { ProviderKind } from './api';
import type { PriceEntry } from './rates';
import { entriesFor, modelFromEntry, orderKinds, snippets } from './setup';

const BASE = 'https://hub.example.com';
const KEY = 'hub_k3y';
const MODEL = 'openai/gpt-4.1-nano';
const byId = Object.fromEntries(snippets(BASE, KEY, MODEL).map((s) => [s.id, s.code]));

describe('client configuration', () => {
  it('points the OpenAI SDKs and curl at /v1 with the key as a bearer token', () => {
    expect(byId['openai-python']).toContain(`OpenAI(base_url="${BASE}/v1", api_key="${KEY}")`);
    expect(byId['openai-python']).toContain(`model="${MODEL}"`);
    expect(byId['openai-ts']).toContain(`new OpenAI({ baseURL: '${BASE}/v1', apiKey: '${KEY}' })`);
    expect(byId.curl).toContain(`curl ${BASE}/v1/chat/completions`);
    expect(byId.curl).toContain(`Authorization: Bearer ${KEY}`);
    expect(JSON.parse(/-d '(.*)'$/m.exec(byId.curl)![1])).toEqual({ model: MODEL, messages: [{ role: 'user', content: 'Hello!' }] });
  });

  it('points the Anthropic SDKs and Claude Code at the root: they add /v1/messages', () => {
    expect(byId['anthropic-python']).toContain(`anthropic.Anthropic(base_url="${BASE}", api_key="${KEY}")`);
    expect(byId['anthropic-ts']).toContain(`new Anthropic({ baseURL: '${BASE}', apiKey: '${KEY}' })`);
    expect(byId['claude-code']).toContain(`export ANTHROPIC_BASE_URL=${BASE}\n`);
    expect(byId['claude-code']).toContain(`export ANTHROPIC_API_KEY=${KEY}\n`);
    expect(byId['claude-code']).toContain(`export ANTHROPIC_MODEL=${MODEL}\n`);
  });

  it('gives Codex a provider of its own on the Responses API, the key from the environment', () => {
    const codex = byId.codex;
    expect(codex).toContain(`model = "${MODEL}"\nmodel_provider = "hub"\n`);
    expect(codex).toContain(`[model_providers.hub]\nname = "Hub"\nbase_url = "${BASE}/v1"\nenv_key = "HUB_KEY"\nwire_api = "responses"\n`);
    expect(codex).toContain(`export HUB_KEY=${KEY}`);
  });

  it('connects the AIGNE CLI to the Hub URL (it mints its own key)', () => {
    expect(byId.aigne).toBe(`npx @aigne/cli hub connect ${BASE}`);
    expect(byId.aigne).not.toContain(KEY);
  });
});

const entry = (key: string, provider: string, type: PriceEntry['type'] = 'chat'): PriceEntry => ({
  key,
  model: key,
  provider,
  type,
  costs: { input: '0.1', output: '0.4' },
  max_output_tokens: 100,
});

describe('the price catalogue in the set-up', () => {
  const entries = [entry('gpt-4.1-nano', 'openai'), entry('dall-e-3', 'openai', 'image'), entry('claude-haiku-4-5', 'anthropic')];

  it("offers the chat models of the provider's kind, any for an OpenAI-compatible URL", () => {
    expect(entriesFor(entries, 'openai', '').map((e) => e.key)).toEqual(['gpt-4.1-nano']);
    expect(entriesFor(entries, 'anthropic', 'HAIKU').map((e) => e.key)).toEqual(['claude-haiku-4-5']);
    expect(entriesFor(entries, 'openai-compatible', '').map((e) => e.key)).toEqual(['gpt-4.1-nano', 'claude-haiku-4-5']);
  });

  it('creates a model with sell rates from its costs and the margin', () => {
    expect(modelFromEntry(entries[0], 'prv_1', '50', '1')).toEqual({
      input_rate: '0.15',
      output_rate: '0.6',
      unit_costs: { input: '0.1', output: '0.4' },
      provider_id: 'prv_1',
      model: 'gpt-4.1-nano',
      type: 'chat',
      max_output_tokens: 100,
    });
  });

  it('offers the common vendors first', () => {
    const kind = (k: string) => ({ kind: k }) as ProviderKind;
    expect(orderKinds(['xai', 'openai-compatible', 'anthropic', 'openai'].map(kind)).map((k) => k.kind)).toEqual(['openai', 'anthropic', 'openai-compatible', 'xai']);
  });
});
