import { describe, expect, it } from 'vitest';
import { appTitle } from './pages/Connect';

describe('the connect page names the app', () => {
  it('as the AIGNE CLI, with the name it sent when that is another', () => {
    // `aigne hub connect` sends its default name with a leading space.
    expect(appTitle(' AIGNE CLI')).toBe('AIGNE CLI');
    expect(appTitle(null)).toBe('AIGNE CLI');
    expect(appTitle('  ')).toBe('AIGNE CLI');
    expect(appTitle(' My Agent ')).toBe('AIGNE CLI (My Agent)');
  });
});
