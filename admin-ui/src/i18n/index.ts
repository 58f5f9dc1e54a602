/**
 * The site's languages: English, Simplified Chinese and Japanese. Every
 * visible string is a key of the English catalogue (`en.ts`); the others are
 * typed to have exactly its keys, so the build (`tsc`) fails when one lacks a
 * key. The language is the one chosen last (kept in local storage), else the
 * browser's first preference we have, else English. Hub's API errors stay in
 * English: they are shown as Hub writes them.
 */

import { useEffect, useState } from 'react';
import { en, type MessageKey, type Messages } from './en';
import { ja } from './ja';
import { zh } from './zh';

export type { MessageKey, Messages };
export type Lang = 'en' | 'zh' | 'ja';

export interface Language {
  lang: Lang;
  /** The BCP 47 tag numbers, money and dates are formatted for. */
  tag: string;
  /** The language's own name, as the chooser shows it. */
  name: string;
}

export const LANGUAGES: Language[] = [
  { lang: 'en', tag: 'en-US', name: 'English' },
  { lang: 'zh', tag: 'zh-CN', name: '简体中文' },
  { lang: 'ja', tag: 'ja-JP', name: '日本語' },
];

export const CATALOGUES: Record<Lang, Messages> = { en, zh, ja };

const STORAGE_KEY = 'hub.lang';
/** Fired on `window` when the language changes, so the site redraws. */
export const LANG_CHANGED = 'hub-lang-changed';

let current: Lang = 'en';

export function lang(): Lang {
  return current;
}

export function localeTag(): string {
  return LANGUAGES.find((l) => l.lang === current)!.tag;
}

/**
 * The language for a stored choice and the browser's preferences
 * (`navigator.languages`): `zh-*` is Chinese (simplified is the Chinese we
 * have), `ja-*` Japanese, anything else English.
 */
export function pickLang(stored: string | null, preferred: readonly string[]): Lang {
  if (stored === 'en' || stored === 'zh' || stored === 'ja') return stored;
  for (const tag of preferred) {
    const base = tag.toLowerCase().split('-')[0];
    if (base === 'en' || base === 'zh' || base === 'ja') return base;
  }
  return 'en';
}

function storedLang(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

/** Makes `next` the language strings and formats are made in (and the page's `lang`, where there is a page). */
export function selectLang(next: Lang): void {
  current = next;
  if (typeof document !== 'undefined') document.documentElement.lang = localeTag();
}

/** Sets the language from the stored choice or the browser's; call once before the first render. */
export function initLang(): void {
  selectLang(pickLang(storedLang(), navigator.languages ?? [navigator.language]));
}

/** The person's choice: kept for next time, and the site redraws in it. */
export function setLang(next: Lang): void {
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Private modes may refuse storage: the choice then lasts for this page only.
  }
  selectLang(next);
  window.dispatchEvent(new Event(LANG_CHANGED));
}

/** The current language, re-rendering the caller when it changes. */
export function useLang(): Lang {
  const [value, setValue] = useState(current);
  useEffect(() => {
    const onChange = () => setValue(current);
    window.addEventListener(LANG_CHANGED, onChange);
    return () => window.removeEventListener(LANG_CHANGED, onChange);
  }, []);
  return value;
}

export type Params = Record<string, string | number>;

/** `{name}` in `text` replaced by `params.name`; numbers formatted for the language. */
export function interpolate(text: string, params: Params = {}): string {
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const v = params[name];
    if (v === undefined) return whole;
    return typeof v === 'number' ? v.toLocaleString(localeTag()) : v;
  });
}

/**
 * The message `key` in the current language. A key the catalogue lacks
 * (possible only through a cast) shows as `⟦key⟧`, which the browser test
 * looks for on every page.
 */
export function t(key: MessageKey, params?: Params): string {
  const text: string | undefined = CATALOGUES[current][key];
  return text === undefined ? `⟦${key}⟧` : interpolate(text, params);
}

/** Keys with plural forms: `<base>_one` and `<base>_other` (Chinese and Japanese use `_other` alone). */
export type PluralKey = MessageKey extends infer K ? (K extends `${infer B}_other` ? B : never) : never;

/** The plural form of `base` for `n` (`{count}` in it is `n`): `tn('models.count', 3)` → "3 models". */
export function tn(base: PluralKey, n: number, params?: Params): string {
  const form = new Intl.PluralRules(localeTag()).select(n);
  const key = (form === 'one' ? `${base}_one` : `${base}_other`) as MessageKey;
  return t(key, { count: n, ...params });
}
