import { describe, expect, it } from 'vitest';
import { parsePriceFile, ratesFromCosts } from './rates';

const FILE = `{
  "sample_spec": {"input_cost_per_token": 0.0, "mode": "chat"},
  "gpt-4o-mini": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
    "cache_read_input_token_cost": 7.5e-08, "litellm_provider": "openai", "mode": "chat", "max_output_tokens": 16384},
  "openrouter/openai/gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
    "litellm_provider": "openrouter", "mode": "chat"},
  "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
  "text-embedding-3-small": {"input_cost_per_token": 2e-08, "litellm_provider": "openai", "mode": "embedding"},
  "whisper-1": {"input_cost_per_second": 0.0001, "litellm_provider": "openai", "mode": "audio_transcription"},
  "tts-1": {"input_cost_per_character": 1.5e-05, "litellm_provider": "openai", "mode": "audio_speech"},
  "sora-2": {"output_cost_per_video_per_second": 0.1, "litellm_provider": "openai", "mode": "video_generation"},
  "free-model": {"litellm_provider": "openai", "mode": "chat"}
}`;

describe('parsePriceFile', () => {
  const entries = parsePriceFile(FILE);

  it('reads costs per million tokens exactly, and per image', () => {
    expect(entries.map((e) => e.key)).toEqual([
      'gpt-4o-mini',
      'openrouter/openai/gpt-4o',
      'dall-e-3',
      'text-embedding-3-small',
      'whisper-1',
      'tts-1',
      'sora-2',
    ]);
    expect(entries[0]).toEqual({
      key: 'gpt-4o-mini',
      model: 'gpt-4o-mini',
      provider: 'openai',
      type: 'chat',
      costs: { input: '0.15', output: '0.6', cache_read: '0.075' },
      max_output_tokens: 16384,
    });
    expect(entries[2]).toMatchObject({ type: 'image', costs: { image: '0.04' } });
    expect(entries[3]).toMatchObject({ type: 'embedding', costs: { input: '0.02' } });
  });

  it('reads audio per second or per million characters, and video per second', () => {
    expect(entries[4]).toMatchObject({ type: 'transcription', costs: { audio: '0.0001' } });
    expect(entries[5]).toMatchObject({ type: 'speech', costs: { audio: '15' } });
    expect(entries[6]).toMatchObject({ type: 'video', costs: { video: '0.1' } });
    expect(ratesFromCosts({ audio: '15', video: '0.1' }, '20', '0.5')).toEqual({ audio_rate: '36', video_rate: '0.24' });
  });

  it('drops the provider prefix from the model id', () => {
    expect(entries[1]).toMatchObject({ model: 'openai/gpt-4o', provider: 'openrouter', costs: { input: '2.5', output: '10' } });
  });

  it('refuses what is not a price file', () => {
    expect(() => parsePriceFile('[1, 2]')).toThrow();
    expect(() => parsePriceFile('{oops')).toThrow();
  });
});

describe('ratesFromCosts', () => {
  it('prices each known cost', () => {
    expect(ratesFromCosts({ input: '0.15', output: '0.6', image: '0.04' }, '20', '0.5')).toEqual({
      input_rate: '0.36',
      output_rate: '1.44',
      image_rate: '0.096',
    });
  });
});
