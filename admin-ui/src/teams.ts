/** A team's settings as its form edits them, and the body the API takes. */

import type { BudgetPeriod, KeyDefaults, Team } from './api';

export interface TeamDraft {
  name: string;
  /** Credits, as typed; empty: no budget. */
  budget: string;
  period: BudgetPeriod;
  timeZone: string;
  /** Model names separated by commas or spaces; empty: every model. */
  models: string;
  rpm: string;
  tpm: string;
  daily: string;
  monthly: string;
}

export function draftOf(team: Team | null): TeamDraft {
  const d = team?.key_defaults ?? {};
  return {
    name: team?.name ?? '',
    budget: team?.budget ?? '',
    period: team?.budget_period ?? 'monthly',
    timeZone: team?.time_zone ?? browserZone(),
    models: team?.allowed_models?.join(', ') ?? '',
    rpm: d.rpm_limit?.toString() ?? '',
    tpm: d.tpm_limit?.toString() ?? '',
    daily: d.daily_spend_cap ?? '',
    monthly: d.monthly_spend_cap ?? '',
  };
}

/** The viewer's own time zone, the likeliest for a new team. */
function browserZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** The body of a create or edit: empty fields clear (no budget, every model, no default limit). */
export function teamBody(d: TeamDraft): Record<string, unknown> {
  const models = d.models
    .split(/[\s,]+/)
    .map((m) => m.trim())
    .filter(Boolean);
  const defaults: KeyDefaults = {};
  if (d.rpm.trim()) defaults.rpm_limit = Number(d.rpm);
  if (d.tpm.trim()) defaults.tpm_limit = Number(d.tpm);
  if (d.daily.trim()) defaults.daily_spend_cap = d.daily.trim();
  if (d.monthly.trim()) defaults.monthly_spend_cap = d.monthly.trim();
  return {
    name: d.name.trim(),
    budget: d.budget.trim() || null,
    budget_period: d.period,
    time_zone: d.timeZone.trim() || 'UTC',
    allowed_models: models.length ? models : null,
    key_defaults: defaults,
  };
}

/** The share of the budget spent, 0 to 1 (for the bar); null without a budget. */
export function spentShare(team: Pick<Team, 'budget' | 'spent'>): number | null {
  if (team.budget === null || team.spent === null) return null;
  const budget = Number(team.budget);
  return budget > 0 ? Math.min(1, Math.max(0, Number(team.spent) / budget)) : 1;
}

/** IANA zone names the browser knows, for the time zone field's suggestions. */
export function knownZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?(k: string): string[] };
  try {
    return intl.supportedValuesOf?.('timeZone') ?? ['UTC'];
  } catch {
    return ['UTC'];
  }
}
