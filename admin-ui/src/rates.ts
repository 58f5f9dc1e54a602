/** Sell rates against provider costs, and LiteLLM's price file. */

import type { ModelType, UnitCosts } from './api';
import { t, type MessageKey } from './i18n';
import { parseJson } from './json';
import { normalize, perMillion, rateFromCost, type Decimal } from './money';

export type RateField = 'input_rate' | 'output_rate' | 'cache_read_rate' | 'cache_write_rate' | 'cache_write_1h_rate' | 'image_rate' | 'audio_rate' | 'video_rate';

/** Each unit cost and the rate it prices: per million tokens, `image` per image, `video` per second, `audio` per second or per million characters. */
export const PRICED: { cost: keyof UnitCosts; rate: RateField; label: MessageKey }[] = [
  { cost: 'input', rate: 'input_rate', label: 'rates.input' },
  { cost: 'output', rate: 'output_rate', label: 'rates.output' },
  { cost: 'cache_read', rate: 'cache_read_rate', label: 'rates.cacheRead' },
  { cost: 'cache_write', rate: 'cache_write_rate', label: 'rates.cacheWrite' },
  { cost: 'cache_write_1h', rate: 'cache_write_1h_rate', label: 'rates.cacheWrite1h' },
  { cost: 'image', rate: 'image_rate', label: 'rates.image' },
  { cost: 'audio', rate: 'audio_rate', label: 'rates.audio' },
  { cost: 'video', rate: 'video_rate', label: 'rates.video' },
];

/** A model type's name in the site's language. */
export const TYPE_NAMES: Record<ModelType, MessageKey> = {
  chat: 'models.type.chat',
  embedding: 'models.type.embedding',
  image: 'models.type.image',
  video: 'models.type.video',
  transcription: 'models.type.transcription',
  speech: 'models.type.speech',
};

/** What a unit cost or rate is per, for a model of `type`. */
export function unitOf(cost: keyof UnitCosts, type: ModelType): string {
  if (cost === 'image') return t('rates.perImage');
  if (cost === 'video') return t('rates.perSecond');
  if (cost === 'audio') return t(type === 'speech' ? 'rates.perMillionChars' : 'rates.perSecond');
  return t('rates.perMillionTokens');
}

/** Whether a model of `type` is billed by this unit cost (tokens apply to every type). */
export function pricedFor(cost: keyof UnitCosts, type: ModelType): boolean {
  if (cost === 'image') return type === 'image';
  if (cost === 'video') return type === 'video';
  if (cost === 'audio') return type === 'transcription' || type === 'speech';
  return true;
}

/** The rates that earn `marginPercent` over each known unit cost at `creditPrice` USD per credit. */
export function ratesFromCosts(costs: UnitCosts, marginPercent: Decimal, creditPrice: Decimal): Partial<Record<RateField, Decimal>> {
  const rates: Partial<Record<RateField, Decimal>> = {};
  for (const { cost, rate } of PRICED) {
    const c = costs[cost];
    if (c !== undefined && c !== '') rates[rate] = rateFromCost(c, marginPercent, creditPrice);
  }
  return rates;
}

export interface PriceEntry {
  /** The key in the price file, such as `gpt-4o` or `openrouter/openai/gpt-4o`. */
  key: string;
  /** The model id to call the provider with: the key without its `litellm_provider/` prefix. */
  model: string;
  provider: string;
  type: ModelType;
  costs: UnitCosts;
  max_output_tokens: number | null;
}

interface LiteLlmEntry {
  input_cost_per_token?: string;
  output_cost_per_token?: string;
  cache_read_input_token_cost?: string;
  cache_creation_input_token_cost?: string;
  cache_creation_input_token_cost_above_1hr?: string;
  output_cost_per_image?: string;
  /** Transcription models. */
  input_cost_per_second?: string;
  /** Speech models. */
  input_cost_per_character?: string;
  output_cost_per_video_per_second?: string;
  output_cost_per_second?: string;
  litellm_provider?: string;
  mode?: string;
  max_output_tokens?: number;
}

const MODES: Record<string, ModelType> = {
  chat: 'chat',
  completion: 'chat',
  responses: 'chat',
  embedding: 'embedding',
  image_generation: 'image',
  video_generation: 'video',
  audio_transcription: 'transcription',
  audio_speech: 'speech',
};

/** Reads LiteLLM's `model_prices_and_context_window.json` (costs exact, per million tokens); skips what Hub cannot price. */
export function parsePriceFile(text: string): PriceEntry[] {
  const file = parseJson<Record<string, LiteLlmEntry>>(text, (k) => k.includes('cost'));
  if (!file || typeof file !== 'object' || Array.isArray(file)) throw new Error(t('rates.badFile'));
  const entries: PriceEntry[] = [];
  for (const [key, e] of Object.entries(file)) {
    const type = MODES[e?.mode ?? ''];
    if (key === 'sample_spec' || !type) continue;
    const costs: UnitCosts = {};
    if (e.input_cost_per_token !== undefined) costs.input = perMillion(e.input_cost_per_token);
    if (e.output_cost_per_token !== undefined) costs.output = perMillion(e.output_cost_per_token);
    if (e.cache_read_input_token_cost !== undefined) costs.cache_read = perMillion(e.cache_read_input_token_cost);
    if (e.cache_creation_input_token_cost !== undefined) costs.cache_write = perMillion(e.cache_creation_input_token_cost);
    if (e.cache_creation_input_token_cost_above_1hr !== undefined) costs.cache_write_1h = perMillion(e.cache_creation_input_token_cost_above_1hr);
    if (e.output_cost_per_image !== undefined) costs.image = normalize(e.output_cost_per_image);
    if (type === 'transcription' && e.input_cost_per_second !== undefined) costs.audio = normalize(e.input_cost_per_second);
    if (type === 'speech' && e.input_cost_per_character !== undefined) costs.audio = perMillion(e.input_cost_per_character);
    const videoSecond = e.output_cost_per_video_per_second ?? e.output_cost_per_second;
    if (type === 'video' && videoSecond !== undefined) costs.video = normalize(videoSecond);
    if (!Object.keys(costs).length) continue;
    const provider = e.litellm_provider ?? '';
    entries.push({
      key,
      model: provider && key.startsWith(`${provider}/`) ? key.slice(provider.length + 1) : key,
      provider,
      type,
      costs,
      max_output_tokens: typeof e.max_output_tokens === 'number' ? e.max_output_tokens : null,
    });
  }
  return entries;
}
