/** A browser's user agent, as a person recognises it in a list of their sessions. */

import { t } from './i18n';

const BROWSERS: [RegExp, string][] = [
  [/Edg(?:e|A|iOS)?\/(\d+)/, 'Edge'],
  [/OPR\/(\d+)/, 'Opera'],
  [/Firefox\/(\d+)/, 'Firefox'],
  [/(?:Chrome|CriOS)\/(\d+)/, 'Chrome'],
  [/Version\/(\d+)[\d.]* (?:Mobile\/\S+ )?Safari/, 'Safari'],
];

const SYSTEMS: [RegExp, string][] = [
  [/Android/, 'Android'],
  [/iPhone|iPad|iPod/, 'iOS'],
  [/Windows/, 'Windows'],
  [/Mac OS X|Macintosh/, 'macOS'],
  [/CrOS/, 'ChromeOS'],
  [/Linux/, 'Linux'],
];

/** `"Mozilla/5.0 (X11; Linux x86_64) … Chrome/130.0 Safari/537.36"` → `"Chrome 130 on Linux"`; unknown agents as sent. */
export function describeAgent(agent: string | null): string {
  if (!agent) return t('agent.unknown');
  const browser = BROWSERS.map(([re, name]) => [re.exec(agent), name] as const).find(([m]) => m);
  const system = SYSTEMS.find(([re]) => re.test(agent))?.[1];
  if (!browser) return agent.length > 60 ? `${agent.slice(0, 57)}…` : agent;
  const [m, name] = browser;
  const browserName = t(/Headless/.test(agent) ? 'agent.headless' : 'agent.browser', { name, version: m![1] });
  return system ? t('agent.onSystem', { browser: browserName, system }) : browserName;
}
