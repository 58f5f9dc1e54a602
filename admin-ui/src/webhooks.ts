/**
 * Webhooks, as the site edits and shows them: which events an endpoint
 * receives (every event, or a chosen few), what changed in an edit, and what
 * each delivery's attempts came to.
 */

import type { DeliveryAttempt, Webhook, WebhookDelivery } from './api';
import { t, type MessageKey } from './i18n';

/**
 * The events an endpoint may subscribe to, in Hub's order, with what they
 * announce (core/src/notify/mod.rs `EventType`; `webhook.test` goes only to
 * the webhook being tested, so it is not a choice). A unit test keeps this
 * list equal to Hub's.
 */
export const EVENT_TYPES = [
  { type: 'balance.low', label: 'event.balanceLow' },
  { type: 'balance.exhausted', label: 'event.balanceExhausted' },
  { type: 'credits.granted', label: 'event.creditsGranted' },
  { type: 'credits.purchased', label: 'event.creditsPurchased' },
  { type: 'payment.refunded', label: 'event.paymentRefunded' },
  { type: 'payment.failed', label: 'event.paymentFailed' },
  { type: 'credential.disabled', label: 'event.credentialDisabled' },
  { type: 'credential.enabled', label: 'event.credentialEnabled' },
  { type: 'key.budget_reached', label: 'event.keyBudgetReached' },
  { type: 'model.below_cost', label: 'event.modelBelowCost' },
] as const satisfies readonly { type: string; label: MessageKey }[];

export type EventTypeName = (typeof EVENT_TYPES)[number]['type'];

/** What an endpoint receives: every event (including ones Hub adds later), or the chosen ones. */
export type EventChoice = { all: true } | { all: false; chosen: ReadonlySet<string> };

export function choiceOf(events: readonly string[]): EventChoice {
  return events.includes('*') ? { all: true } : { all: false, chosen: new Set(events) };
}

/** Checks or unchecks one event (a specific choice; "every event" is switched on its own). */
export function toggleEvent(choice: EventChoice, type: string, on: boolean): EventChoice {
  const chosen = new Set(choice.all ? [] : choice.chosen);
  if (on) chosen.add(type);
  else chosen.delete(type);
  return { all: false, chosen };
}

/** The `events` Hub takes: `["*"]`, or the chosen events in Hub's order. Throws when nothing is chosen. */
export function eventsBody(choice: EventChoice): string[] {
  if (choice.all) return ['*'];
  const known = EVENT_TYPES.map((e) => e.type as string).filter((type) => choice.chosen.has(type));
  // Kept, not dropped: an event this site does not know yet, that Hub does.
  const other = [...choice.chosen].filter((type) => !known.includes(type)).sort();
  const events = [...known, ...other];
  if (events.length === 0) throw new Error(t('webhooks.noEvents'));
  return events;
}

/** `"every event"`, or the event names. */
export function describeEvents(events: readonly string[]): string {
  return events.includes('*') ? t('webhooks.everyEvent') : events.join(', ');
}

export interface WebhookDraft {
  url: string;
  description: string;
  events: EventChoice;
  enabled: boolean;
}

export function draftOf(w: Webhook | null): WebhookDraft {
  return {
    url: w?.url ?? '',
    description: w?.description ?? '',
    events: w ? choiceOf(w.events) : { all: true },
    enabled: w?.enabled ?? true,
  };
}

/** The body of a webhook's POST, or of its PATCH with only what changed. */
export function webhookBody(draft: WebhookDraft, before: Webhook | null): Record<string, unknown> {
  const body = {
    url: draft.url.trim(),
    description: draft.description.trim() || null,
    events: eventsBody(draft.events),
    enabled: draft.enabled,
  };
  if (!before) return body;
  const changed: Record<string, unknown> = {};
  if (body.url !== before.url) changed.url = body.url;
  if (body.description !== (before.description ?? null)) changed.description = body.description;
  if (body.events.join() !== before.events.join()) changed.events = body.events;
  if (body.enabled !== before.enabled) changed.enabled = body.enabled;
  return changed;
}

/** The latest attempt at a delivery; undefined before the first. */
export function lastAttempt(d: Pick<WebhookDelivery, 'attempts'>): DeliveryAttempt | undefined {
  return d.attempts.reduce<DeliveryAttempt | undefined>((last, a) => (!last || a.attempt > last.attempt ? a : last), undefined);
}

/** What the endpoint answered, or why there was no answer: `"HTTP 200"`, `"HTTP 503"`, `"connection refused"`. */
export function attemptOutcome(a: DeliveryAttempt | undefined): string {
  if (!a) return t('webhooks.notTried');
  if (a.status !== null) return `HTTP ${a.status}${a.error ? ` · ${a.error}` : ''}`;
  return a.error ?? t('webhooks.noAnswer');
}

/** Whether any delivery is still on its way: the list is worth asking again. */
export function anyPending(deliveries: readonly Pick<WebhookDelivery, 'state'>[]): boolean {
  return deliveries.some((d) => d.state === 'pending');
}
