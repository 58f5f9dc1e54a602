/** The guided set-up: where each provider's keys come from, when to offer it, and the client configuration it hands out. */

import type { ModelType, ProviderKind } from './api';
import { ratesFromCosts, type PriceEntry } from './rates';
import type { Decimal } from './money';

const SKIPPED_ITEM = 'hub.setupSkipped';

/** Whether this browser was told to skip the guided set-up (it stays reachable from the sidebar). */
export function setupSkipped(): boolean {
  return localStorage.getItem(SKIPPED_ITEM) === '1';
}

export function skipSetup(): void {
  localStorage.setItem(SKIPPED_ITEM, '1');
}

/** Where an operator gets a key for each provider kind (Ollama needs none; an OpenAI-compatible URL is whoever runs it). */
export const KEY_PAGES: Record<string, string> = {
  openai: 'https://platform.openai.com/api-keys',
  anthropic: 'https://console.anthropic.com/settings/keys',
  gemini: 'https://aistudio.google.com/apikey',
  bedrock: 'https://console.aws.amazon.com/iam/home#/security_credentials',
  deepseek: 'https://platform.deepseek.com/api_keys',
  xai: 'https://console.x.ai/',
  openrouter: 'https://openrouter.ai/settings/keys',
  doubao: 'https://console.volcengine.com/ark/region:ark+cn-beijing/apiKey',
  poe: 'https://poe.com/api_key',
  ideogram: 'https://ideogram.ai/manage-api',
};

/** The kinds offered first: the common vendors in a stable order, then the rest as Hub lists them. */
export function orderKinds(kinds: ProviderKind[]): ProviderKind[] {
  const first = ['openai', 'anthropic', 'gemini', 'openrouter', 'openai-compatible'];
  const rank = (k: ProviderKind) => (first.includes(k.kind) ? first.indexOf(k.kind) : first.length);
  return [...kinds].sort((a, b) => rank(a) - rank(b));
}

/** Where LiteLLM publishes its price file, the catalogue the set-up picks models from. */
export const PRICE_FILE_URL = 'https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json';

/**
 * The body that creates `entry` as a model of `providerId`: its unit costs,
 * and sell rates earning `margin` percent at `creditPrice` USD per credit.
 */
export function modelFromEntry(entry: PriceEntry, providerId: string, margin: Decimal, creditPrice: Decimal) {
  return {
    ...ratesFromCosts(entry.costs, margin, creditPrice),
    unit_costs: entry.costs,
    provider_id: providerId,
    model: entry.model,
    type: entry.type,
    max_output_tokens: entry.max_output_tokens ?? undefined,
  };
}

/** The chat entries of the price file a provider of `kind` serves (LiteLLM names OpenAI-compatible vendors by their own kind). */
export function entriesFor(entries: PriceEntry[], kind: string, search: string): PriceEntry[] {
  const wanted: ModelType = 'chat';
  const q = search.trim().toLowerCase();
  return entries.filter((e) => e.type === wanted && (kind === 'openai-compatible' || e.provider === kind) && e.key.toLowerCase().includes(q));
}

export type SnippetId = 'curl' | 'openai-python' | 'openai-ts' | 'anthropic-python' | 'anthropic-ts' | 'codex' | 'claude-code' | 'aigne';

export interface Snippet {
  id: SnippetId;
  /** The client's name (a product name: the same in every language). */
  title: string;
  /** Where the text goes (a file), or what to install first; null: typed in a shell. */
  where: string | null;
  code: string;
}

/**
 * Client configuration for this Hub: `base` its URL (no trailing slash),
 * `key` a Hub key, `model` a chat model it serves (`provider/model`). Each
 * matches what the repository's tests run against `hub serve`: Codex over
 * the Responses API, Claude Code with ANTHROPIC_BASE_URL (no `/v1`), the
 * AIGNE CLI's `hub connect`, which mints its own key.
 */
export function snippets(base: string, key: string, model: string): Snippet[] {
  const prompt = 'Hello!';
  return [
    {
      id: 'curl',
      title: 'curl',
      where: null,
      code: `curl ${base}/v1/chat/completions \\
  -H "Authorization: Bearer ${key}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${model}", "messages": [{"role": "user", "content": "${prompt}"}]}'`,
    },
    {
      id: 'openai-python',
      title: 'OpenAI SDK (Python)',
      where: 'pip install openai',
      code: `from openai import OpenAI

client = OpenAI(base_url="${base}/v1", api_key="${key}")
reply = client.chat.completions.create(
    model="${model}",
    messages=[{"role": "user", "content": "${prompt}"}],
)
print(reply.choices[0].message.content)`,
    },
    {
      id: 'openai-ts',
      title: 'OpenAI SDK (TypeScript)',
      where: 'npm install openai',
      code: `import OpenAI from 'openai';

const client = new OpenAI({ baseURL: '${base}/v1', apiKey: '${key}' });
const reply = await client.chat.completions.create({
  model: '${model}',
  messages: [{ role: 'user', content: '${prompt}' }],
});
console.log(reply.choices[0].message.content);`,
    },
    {
      id: 'anthropic-python',
      title: 'Anthropic SDK (Python)',
      where: 'pip install anthropic',
      code: `import anthropic

client = anthropic.Anthropic(base_url="${base}", api_key="${key}")
message = client.messages.create(
    model="${model}",
    max_tokens=1024,
    messages=[{"role": "user", "content": "${prompt}"}],
)
print(message.content[0].text)`,
    },
    {
      id: 'anthropic-ts',
      title: 'Anthropic SDK (TypeScript)',
      where: 'npm install @anthropic-ai/sdk',
      code: `import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({ baseURL: '${base}', apiKey: '${key}' });
const message = await client.messages.create({
  model: '${model}',
  max_tokens: 1024,
  messages: [{ role: 'user', content: '${prompt}' }],
});
for (const block of message.content) if (block.type === 'text') console.log(block.text);`,
    },
    {
      id: 'codex',
      title: 'Codex CLI',
      where: '~/.codex/config.toml',
      code: `model = "${model}"
model_provider = "hub"

[model_providers.hub]
name = "Hub"
base_url = "${base}/v1"
env_key = "HUB_KEY"
wire_api = "responses"

# then, in the shell:
#   export HUB_KEY=${key}
#   codex`,
    },
    {
      id: 'claude-code',
      title: 'Claude Code',
      where: null,
      code: `export ANTHROPIC_BASE_URL=${base}
export ANTHROPIC_API_KEY=${key}
export ANTHROPIC_MODEL=${model}
export ANTHROPIC_DEFAULT_HAIKU_MODEL=${model}
claude`,
    },
    {
      id: 'aigne',
      title: 'AIGNE CLI',
      where: null,
      code: `npx @aigne/cli hub connect ${base}`,
    },
  ];
}
