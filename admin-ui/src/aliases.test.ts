import { describe, expect, it } from 'vitest';
import { formatTargets, parseTargets } from './aliases';

describe('alias targets as text', () => {
  it('reads one target a line, with optional overrides', () => {
    const text = 'openai/gpt-5 {"reasoning_effort": "high"}\n\n  claude-sonnet-4-5  \n';
    expect(parseTargets(text)).toEqual({
      targets: [{ model: 'openai/gpt-5', overrides: { reasoning_effort: 'high' } }, { model: 'claude-sonnet-4-5' }],
    });
  });

  it('names the first line that is not a target', () => {
    expect(parseTargets('a\nb {not json}\nc')).toEqual({ badLine: 2 });
    expect(parseTargets('a [1, 2]')).toEqual({ badLine: 1 });
  });

  it('writes what it reads', () => {
    const targets = [{ model: 'a/b', overrides: { top_k: 5 } }, { model: 'c' }];
    expect(formatTargets(targets)).toBe('a/b {"top_k":5}\nc');
    expect(parseTargets(formatTargets(targets))).toEqual({ targets });
  });
});
