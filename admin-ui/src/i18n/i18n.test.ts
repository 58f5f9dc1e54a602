import { describe, expect, it } from 'vitest';
import { formatMoney } from '../money';
import { count } from '../format';
import { formatTime } from '../time';
import { CATALOGUES, interpolate, LANGUAGES, pickLang, selectLang, t, tn, type Lang } from '.';
import { en } from './en';

/** `{name}` placeholders of a message, sorted. */
const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

/** Runs `run` in `lang`, then back in English. */
function inLang(lang: Lang, run: () => void) {
  selectLang(lang);
  try {
    run();
  } finally {
    selectLang('en');
  }
}

describe('catalogues', () => {
  const keys = Object.keys(en).sort();

  for (const { lang } of LANGUAGES) {
    const catalogue = CATALOGUES[lang];

    it(`${lang} has exactly the English keys`, () => {
      expect(Object.keys(catalogue).sort()).toEqual(keys);
    });

    it(`${lang} has no empty message`, () => {
      const empty = Object.entries(catalogue).filter(([, v]) => !v.trim());
      expect(empty).toEqual([]);
    });

    it(`${lang} uses the same placeholders as English`, () => {
      const wrong = keys.filter((k) => placeholders(catalogue[k as keyof typeof en]).join() !== placeholders(en[k as keyof typeof en]).join());
      expect(wrong).toEqual([]);
    });
  }

  it('Chinese and Japanese messages are translated, not English left in place', () => {
    for (const lang of ['zh', 'ja'] as const) {
      // Whole messages written only in Latin letters are English left behind (names like "Webhook" aside).
      const latin = Object.entries(CATALOGUES[lang]).filter(
        ([k, v]) => /^[\x20-\x7e]*$/.test(v) && /[a-z]{4,}/i.test(v) && v === en[k as keyof typeof en] && !ALLOWED_AS_IS.has(k),
      );
      expect(latin.map(([k]) => k), lang).toEqual([]);
    }
  });

  it('keeps every plural pair complete', () => {
    const bases = Object.keys(en).filter((k) => k.endsWith('_other')).map((k) => k.slice(0, -'_other'.length));
    for (const base of bases) expect(Object.keys(en), base).toContain(`${base}_one`);
  });
});

/** Messages that are the same in every language: product names and code. */
const ALLOWED_AS_IS = new Set(['agent.browser', 'nav.webhooks', 'audit.resource.webhook', 'call.ttfb']);

describe('t', () => {
  it('puts values in, numbers formatted for the language', () => {
    expect(interpolate('{a} of {b}', { a: 'x', b: 1234 })).toBe('x of 1,234');
    expect(t('providers.activeOf', { active: 1, total: 2 })).toBe('1 of 2 active');
  });

  it('picks the plural form', () => {
    expect(tn('codes.count', 1)).toBe('1 code');
    expect(tn('codes.count', 3)).toBe('3 codes');
  });

  it('speaks the chosen language', () => {
    inLang('zh', () => {
      expect(t('nav.overview')).toBe('概览');
      expect(tn('codes.count', 3)).toBe('3 个兑换码');
    });
    inLang('ja', () => expect(t('nav.overview')).toBe('概要'));
  });

  it('shows a missing key as a marker the browser test looks for', () => {
    expect(t('no.such.key' as keyof typeof en)).toBe('⟦no.such.key⟧');
  });
});

describe('choosing the language', () => {
  it('takes the stored choice first, then the browser’s preferences', () => {
    expect(pickLang('ja', ['zh-CN'])).toBe('ja');
    expect(pickLang(null, ['zh-CN', 'en'])).toBe('zh');
    expect(pickLang(null, ['zh-TW'])).toBe('zh');
    expect(pickLang(null, ['fr-FR', 'ja-JP'])).toBe('ja');
    expect(pickLang(null, ['fr-FR'])).toBe('en');
    expect(pickLang('xx', [])).toBe('en');
  });
});

describe('formatting for the language', () => {
  it('groups money exactly, through no float', () => {
    expect(formatMoney('1234567.123456789', { prefix: '$' })).toBe('$1,234,567.123456789');
    // A locale that groups with dots and marks decimals with a comma.
    expect(formatMoney('-1234.5', { prefix: '€', locale: 'de-DE' })).toBe('-€1.234,50');
    expect(formatMoney('12345678901234567890.000000001', { locale: 'de-DE' })).toBe('12.345.678.901.234.567.890,000000001');
    inLang('ja', () => expect(formatMoney('1234.5', { prefix: '¥' })).toBe('¥1,234.50'));
  });

  it('writes dates and counts as each language does', () => {
    const iso = '2026-11-27T09:11:50Z';
    expect(formatTime(iso, 0)).toBe('11/27/2026, 09:11:50');
    inLang('zh', () => expect(formatTime(iso, 0)).toBe('2026/11/27 09:11:50'));
    inLang('ja', () => {
      expect(formatTime(iso, 0)).toBe('2026/11/27 09:11:50');
      expect(count(1234567)).toBe('1,234,567');
    });
  });
});
