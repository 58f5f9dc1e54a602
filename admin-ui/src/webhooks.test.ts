import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Webhook } from './api';
import { anyPending, attemptOutcome, choiceOf, describeEvents, draftOf, EVENT_TYPES, eventsBody, lastAttempt, toggleEvent, webhookBody } from './webhooks';

const HOOK: Webhook = {
  id: 'whk_1',
  url: 'https://example.com/hub',
  events: ['balance.low', 'credits.purchased'],
  description: 'billing',
  enabled: true,
  disabled_reason: null,
  secret_hint: 'whsec_…abcd',
  created_at: '2030-01-01T00:00:00Z',
  updated_at: '2030-01-01T00:00:00Z',
};

describe('the events a webhook receives', () => {
  it("offers exactly Hub's subscribable events, in Hub's order", () => {
    // The event names Hub declares (core/src/notify/mod.rs), less the test event it sends only on request.
    const source = readFileSync(resolve(import.meta.dirname, '../../core/src/notify/mod.rs'), 'utf8');
    const declared = [...source.matchAll(/^\s+\w+ = "([a-z_.]+)",$/gm)].map((m) => m[1]).filter((t) => t !== 'webhook.test');
    expect(declared.length).toBeGreaterThan(5);
    expect(EVENT_TYPES.map((e) => e.type)).toEqual(declared);
  });

  it('sends every event as ["*"], else the chosen ones in a stable order', () => {
    expect(eventsBody({ all: true })).toEqual(['*']);
    let choice = toggleEvent({ all: true }, 'credits.purchased', true);
    choice = toggleEvent(choice, 'balance.low', true);
    expect(eventsBody(choice)).toEqual(['balance.low', 'credits.purchased']);
    choice = toggleEvent(choice, 'balance.low', false);
    expect(eventsBody(choice)).toEqual(['credits.purchased']);
    // An event Hub knows and this site does not yet is kept.
    expect(eventsBody(choiceOf(['team.budget_reached', 'balance.low']))).toEqual(['balance.low', 'team.budget_reached']);
  });

  it('refuses a webhook with no events at all', () => {
    const none = toggleEvent(choiceOf(['balance.low']), 'balance.low', false);
    expect(() => eventsBody(none)).toThrow('Events: choose at least one, or every event.');
  });

  it('reads a stored subscription back', () => {
    expect(choiceOf(['*'])).toEqual({ all: true });
    expect(describeEvents(['*'])).toBe('every event');
    expect(describeEvents(HOOK.events)).toBe('balance.low, credits.purchased');
  });
});

describe('creating and editing a webhook', () => {
  it('creates with every field, an empty description as none', () => {
    const draft = { ...draftOf(null), url: ' https://example.com/x ' };
    expect(webhookBody(draft, null)).toEqual({ url: 'https://example.com/x', description: null, events: ['*'], enabled: true });
  });

  it('patches only what changed', () => {
    const draft = draftOf(HOOK);
    expect(webhookBody(draft, HOOK)).toEqual({});
    expect(webhookBody({ ...draft, enabled: false }, HOOK)).toEqual({ enabled: false });
    expect(webhookBody({ ...draft, description: '  ' }, HOOK)).toEqual({ description: null });
    expect(webhookBody({ ...draft, events: { all: true } }, HOOK)).toEqual({ events: ['*'] });
    expect(webhookBody({ ...draft, url: 'https://example.com/new' }, HOOK)).toEqual({ url: 'https://example.com/new' });
  });
});

describe('deliveries', () => {
  const attempt = (n: number, status: number | null, error: string | null) => ({ attempt: n, at: '2030-01-01T00:00:00Z', status, error, duration_ms: 3 });

  it('shows the latest attempt and what came of it', () => {
    const attempts = [attempt(2, 200, null), attempt(1, null, 'connection refused')];
    expect(lastAttempt({ attempts })).toEqual(attempts[0]);
    expect(attemptOutcome(lastAttempt({ attempts }))).toBe('HTTP 200');
    expect(attemptOutcome(attempts[1])).toBe('connection refused');
    expect(attemptOutcome(attempt(1, 503, 'retry later'))).toBe('HTTP 503 · retry later');
    expect(attemptOutcome(lastAttempt({ attempts: [] }))).toBe('not tried yet');
  });

  it('keeps watching while a delivery is pending', () => {
    expect(anyPending([{ state: 'delivered' }, { state: 'pending' }])).toBe(true);
    expect(anyPending([{ state: 'delivered' }, { state: 'failed' }])).toBe(false);
  });
});
