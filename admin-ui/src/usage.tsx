/** Usage over a date range: the preset picker, summary cards, time charts and top lists. */

import { useState, type ReactNode } from 'react';
import { api, type GroupBy, type UsageRow } from './api';
import { useUserNames } from './people';
import { BarList, TimeChart, type Series } from './charts';
import { compact, count, ms, percent } from './format';
import { t, type MessageKey } from './i18n';
import { compare, sum, toChartNumber } from './money';
import { alignBuckets, browserOffset, formatBucket, formatOffset, PRESETS, presetLabel, presetRange, type Preset, type Range } from './time';
import { LoadError, Stat, useLoad, useMoney } from './ui';

interface Usage {
  range: Range;
  offset: number;
  /** One row per bucket of the range (zeros where nothing happened). */
  buckets: UsageRow[];
  groups: Partial<Record<GroupBy, UsageRow[]>>;
}

const EMPTY: Omit<UsageRow, 'group'> = {
  calls: 0,
  errors: 0,
  input_tokens: 0,
  output_tokens: 0,
  cache_read_tokens: 0,
  cache_write_tokens: 0,
  credits: '0',
  cache_saved: '0',
  ttfb_p50_ms: null,
  ttfb_p95_ms: null,
};

/** Loads `path` (an admin or self-service usage endpoint) over a preset, by time and by `groups`, narrowed by `filter`. */
function useUsage(path: string, preset: Preset, groups: GroupBy[], filter: Record<string, string>) {
  return useLoad(async (): Promise<Usage> => {
    const offset = browserOffset();
    const range = presetRange(preset, Date.now(), offset);
    const query = { ...filter, from: new Date(range.from).toISOString(), to: new Date(range.to).toISOString(), tz: formatOffset(offset) };
    const get = (group_by: GroupBy) => api<{ data: UsageRow[] }>(path, { query: { ...query, group_by } }).then((r) => r.data);
    const [series, ...grouped] = await Promise.all([get(range.bucket), ...groups.map(get)]);
    const buckets = alignBuckets(range.starts, series).map((row, i) => row ?? { ...EMPTY, group: new Date(range.starts[i]).toISOString() });
    return { range, offset, buckets, groups: Object.fromEntries(groups.map((g, i) => [g, grouped[i]])) };
  }, [path, preset, groups.join(), JSON.stringify(filter)]);
}

function PresetPicker({ value, onChange }: { value: Preset; onChange(p: Preset): void }) {
  return (
    <div className="segmented" role="group" aria-label={t('range.label')}>
      {(Object.keys(PRESETS) as Preset[]).map((p) => (
        <button key={p} type="button" aria-pressed={p === value} title={presetLabel(p)} onClick={() => onChange(p)}>
          {p}
        </button>
      ))}
    </div>
  );
}

/** Calls-weighted mean of the buckets' percentiles (the API has no ungrouped total). */
function weighted(rows: UsageRow[], pick: (r: UsageRow) => number | null): number | null {
  const known = rows.filter((r) => pick(r) !== null && r.calls > 0);
  const calls = known.reduce((t, r) => t + r.calls, 0);
  return calls ? known.reduce((t, r) => t + pick(r)! * r.calls, 0) / calls : null;
}

function UsageSummary({ usage }: { usage: Usage }) {
  const money = useMoney();
  const rows = usage.buckets;
  const calls = rows.reduce((t, r) => t + r.calls, 0);
  const errors = rows.reduce((t, r) => t + r.errors, 0);
  const input = rows.reduce((t, r) => t + r.input_tokens, 0);
  const output = rows.reduce((t, r) => t + r.output_tokens, 0);
  const cacheRead = rows.reduce((t, r) => t + r.cache_read_tokens, 0);
  const cacheWrite = rows.reduce((t, r) => t + r.cache_write_tokens, 0);
  return (
    <div className="stats">
      <Stat label={t('usage.calls')} value={count(calls)} sub={t('usage.failed', { n: count(errors) })} />
      <Stat label={t('usage.tokens')} value={compact(input + output)} sub={t('usage.inOut', { input: count(input), output: count(output) })} />
      <Stat label={t('usage.credits')} value={money(sum(rows.map((r) => r.credits)))} />
      <Stat
        label={t('usage.saved')}
        value={money(sum(rows.map((r) => r.cache_saved)))}
        sub={t('usage.cacheSub', { read: count(cacheRead), written: count(cacheWrite) })}
      />
      <Stat label={t('usage.errorRate')} value={percent(errors, calls)} />
      <Stat
        label={t('usage.ttfb')}
        value={`${ms(weighted(rows, (r) => r.ttfb_p50_ms))} / ${ms(weighted(rows, (r) => r.ttfb_p95_ms))}`}
        sub={t('usage.weighted')}
      />
    </div>
  );
}

const COLORS = { ok: '#4f46e5', bad: '#dc2626', input: '#0ea5e9', output: '#8b5cf6', cache: '#14b8a6', credits: '#f59e0b', p50: '#10b981', p95: '#f97316' };

function UsageCharts({ usage }: { usage: Usage }) {
  const money = useMoney();
  const { buckets, range, offset } = usage;
  const labels = range.starts.map((s) => formatBucket(s, range.bucket, offset));
  const titles = range.starts.map((s) => formatBucket(s, range.bucket, offset, true));
  const col = (pick: (r: UsageRow) => number) => buckets.map(pick);
  const chart = (title: string, kind: 'bars' | 'lines', series: Series[], format?: (v: number) => string) => (
    <section className="card">
      <h3>{title}</h3>
      <TimeChart labels={labels} titles={titles} kind={kind} series={series} format={format} />
    </section>
  );
  return (
    <div className="charts">
      {chart(t('usage.calls'), 'bars', [
        { name: t('usage.succeeded'), color: COLORS.ok, values: col((r) => r.calls - r.errors), format: count },
        { name: t('usage.failedSeries'), color: COLORS.bad, values: col((r) => r.errors), format: count },
      ])}
      {chart(t('usage.tokens'), 'bars', [
        { name: t('usage.input'), color: COLORS.input, values: col((r) => r.input_tokens - r.cache_read_tokens), format: count },
        { name: t('usage.cacheRead'), color: COLORS.cache, values: col((r) => r.cache_read_tokens), format: count },
        { name: t('usage.output'), color: COLORS.output, values: col((r) => r.output_tokens), format: count },
      ])}
      {chart(t('usage.credits'), 'bars', [
        {
          name: t('usage.credits'),
          color: COLORS.credits,
          values: col((r) => toChartNumber(r.credits)),
          format: (_, i) => money(buckets[i].credits),
        },
      ])}
      {chart(
        t('usage.errorRate'),
        'lines',
        [{ name: t('usage.errorRate'), color: COLORS.bad, values: col((r) => (r.calls ? (r.errors / r.calls) * 100 : 0)) }],
        (v) => `${compact(v)}%`,
      )}
      {chart(
        t('usage.ttfbChart'),
        'lines',
        [
          { name: 'p50', color: COLORS.p50, values: col((r) => r.ttfb_p50_ms ?? 0), format: ms },
          { name: 'p95', color: COLORS.p95, values: col((r) => r.ttfb_p95_ms ?? 0), format: ms },
        ],
        (v) => `${compact(v)} ms`,
      )}
    </div>
  );
}

type Metric = 'calls' | 'tokens' | 'credits';
/** How many groups a top list shows. */
const TOP = 8;
const METRIC_NAMES: Record<Metric, MessageKey> = { calls: 'usage.metric.calls', tokens: 'usage.metric.tokens', credits: 'usage.metric.credits' };

export interface TopList {
  group: GroupBy;
  title: string;
  /** A display name for a group's id (a team's name for `team_…`). */
  name?(id: string): string;
  /** The groups are users: named by asking Hub for the ones shown. */
  users?: boolean;
}

/** Top groups of one kind, ranked by a metric the viewer picks. */
function TopLists({ usage, lists }: { usage: Usage; lists: TopList[] }) {
  const [metric, setMetric] = useState<Metric>('calls');
  const money = useMoney();
  // Bar lengths only; the ranking and the labels use exact values.
  const value = (r: UsageRow) =>
    metric === 'calls' ? r.calls : metric === 'tokens' ? r.input_tokens + r.output_tokens : toChartNumber(r.credits);
  const rank = (a: UsageRow, b: UsageRow) => (metric === 'credits' ? compare(b.credits, a.credits) : value(b) - value(a));
  const text = (r: UsageRow) =>
    metric === 'calls' ? count(r.calls) : metric === 'tokens' ? compact(r.input_tokens + r.output_tokens) : money(r.credits);
  const top = (rows: UsageRow[] | undefined) => [...(rows ?? [])].sort(rank).slice(0, TOP);
  // Only the users on show are named (a Hub may have thousands).
  const userName = useUserNames(lists.some((l) => l.users) ? top(usage.groups.user).map((r) => r.group) : []);
  const groupName = (l: TopList, group: string) => (l.users ? userName(group) : (l.name?.(group) ?? group));
  return (
    <section>
      <div className="toolbar">
        <h2>{t('usage.top')}</h2>
        <div className="segmented" role="group" aria-label={t('usage.rankBy')}>
          {(['calls', 'tokens', 'credits'] as Metric[]).map((m) => (
            <button key={m} type="button" aria-pressed={m === metric} onClick={() => setMetric(m)}>
              {t(METRIC_NAMES[m])}
            </button>
          ))}
        </div>
      </div>
      <div className="charts">
        {lists.map((l) => (
          <section className="card" key={l.group}>
            <h3>{l.title}</h3>
            <BarList
              rows={top(usage.groups[l.group]).map((r) => ({ label: r.group ? groupName(l, r.group) : t('common.noneParen'), value: value(r), text: text(r) }))}
            />
          </section>
        ))}
      </div>
    </section>
  );
}

/** The preset picker and everything loaded for it, as one block. */
export function UsageBlock(props: { path: string; title: string; lists: TopList[]; filter?: Record<string, string>; controls?: ReactNode }) {
  const [preset, setPreset] = useState<Preset>('24h');
  const usage = useUsage(props.path, preset, props.lists.map((l) => l.group), props.filter ?? {});
  return (
    <>
      <div className="toolbar">
        <h2>{props.title}</h2>
        {props.controls}
        <PresetPicker value={preset} onChange={setPreset} />
      </div>
      <LoadError state={usage} />
      {usage.data && (
        <>
          <UsageSummary usage={usage.data} />
          <UsageCharts usage={usage.data} />
          <TopLists usage={usage.data} lists={props.lists} />
        </>
      )}
    </>
  );
}
