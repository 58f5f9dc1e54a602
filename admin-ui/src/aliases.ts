/**
 * Model aliases as the site edits them: the targets as text, one a line,
 * `provider/model` or a bare model, optionally followed by a JSON object of
 * parameter overrides (`gpt-5 {"reasoning_effort": "high"}`).
 */

import type { MessageKey } from './i18n';

export type Routing = 'priority' | 'latency' | 'cost';
export const ROUTINGS: Routing[] = ['priority', 'latency', 'cost'];
export const ROUTING_NAMES: Record<Routing, MessageKey> = {
  priority: 'routing.priority',
  latency: 'routing.latency',
  cost: 'routing.cost',
};

export interface AliasTarget {
  model: string;
  overrides?: Record<string, unknown>;
}

export interface Alias {
  id: string;
  name: string;
  description: string | null;
  targets: AliasTarget[];
  routing: Routing;
  fallback_on_refusal: boolean;
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

/** The targets, one a line. */
export function formatTargets(targets: AliasTarget[]): string {
  return targets.map((t) => (t.overrides ? `${t.model} ${JSON.stringify(t.overrides)}` : t.model)).join('\n');
}

/** Targets from text, or the number (from 1) of the first line that is not one. */
export function parseTargets(text: string): { targets: AliasTarget[] } | { badLine: number } {
  const targets: AliasTarget[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const space = line.search(/\s/);
    if (space < 0) {
      targets.push({ model: line });
      continue;
    }
    try {
      const overrides: unknown = JSON.parse(line.slice(space));
      if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) return { badLine: i + 1 };
      targets.push({ model: line.slice(0, space), overrides: overrides as Record<string, unknown> });
    } catch {
      return { badLine: i + 1 };
    }
  }
  return { targets };
}
