import { describe, expect, it } from 'vitest';
import type { Team } from './api';
import { draftOf, spentShare, teamBody } from './teams';

const team: Team = {
  id: 'team_1',
  name: 'research',
  account_id: 'usr_t',
  balance: '5',
  available: '5',
  budget: '100',
  budget_period: 'weekly',
  time_zone: 'Asia/Tokyo',
  period_start: '2026-11-29T15:00:00.000Z',
  period_end: '2026-12-06T15:00:00.000Z',
  spent: '25.5',
  remaining: '74.5',
  allowed_models: ['gpt-5', 'claude-sonnet-4-5'],
  key_defaults: { rpm_limit: 60, monthly_spend_cap: '10' },
  role: null,
  created_at: '2026-11-01T00:00:00.000Z',
  updated_at: '2026-11-01T00:00:00.000Z',
};

describe('team form', () => {
  it('round-trips a team through its draft', () => {
    expect(teamBody(draftOf(team))).toEqual({
      name: 'research',
      budget: '100',
      budget_period: 'weekly',
      time_zone: 'Asia/Tokyo',
      allowed_models: ['gpt-5', 'claude-sonnet-4-5'],
      key_defaults: { rpm_limit: 60, monthly_spend_cap: '10' },
    });
  });

  it('clears what is left empty', () => {
    const d = { ...draftOf(team), budget: ' ', models: '', rpm: '', monthly: '' };
    expect(teamBody(d)).toMatchObject({ budget: null, allowed_models: null, key_defaults: {} });
  });

  it('reads models separated by commas, spaces or lines', () => {
    expect(teamBody({ ...draftOf(null), name: 'x', models: 'a, b\nc  d' }).allowed_models).toEqual(['a', 'b', 'c', 'd']);
  });

  it('measures the budget spent', () => {
    expect(spentShare(team)).toBeCloseTo(0.255);
    expect(spentShare({ budget: null, spent: null })).toBeNull();
    expect(spentShare({ budget: '1', spent: '3' })).toBe(1);
  });
});
