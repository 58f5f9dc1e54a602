import { describe, expect, it } from 'vitest';
import { toCsv } from './csv';

describe('toCsv', () => {
  it('quotes only what needs it and keeps decimals as text', () => {
    expect(toCsv(['a', 'b', 'c'], [['x', 0.5, null], ['say "hi", ok', '0.000000042', 'two\nlines']])).toBe(
      'a,b,c\r\nx,0.5,\r\n"say ""hi"", ok",0.000000042,"two\nlines"\r\n',
    );
  });
});
