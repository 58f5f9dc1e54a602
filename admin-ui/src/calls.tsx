/** The call log as a table, the detail drawer of one call, and its CSV. */

import { useState, type ReactNode } from 'react';
import type { Call } from './api';
import { toCsv } from './csv';
import { count, ms } from './format';
import { t, type MessageKey } from './i18n';
import { normalize } from './money';
import { formatTime } from './time';
import { Badge, Drawer, useMoney, type Tone } from './ui';

const TONE: Record<Call['status'], Tone> = { success: 'ok', failed: 'bad', aborted: 'warn' };
export const CALL_STATUS: Record<Call['status'], MessageKey> = {
  success: 'call.status.success',
  failed: 'call.status.failed',
  aborted: 'call.status.aborted',
};

function StatusBadge({ call }: { call: Call }) {
  return (
    <Badge tone={TONE[call.status]}>
      {t(CALL_STATUS[call.status])}
      {call.http_status && call.status !== 'success' ? ` ${call.http_status}` : ''}
    </Badge>
  );
}

/** Rows of calls; a click opens the drawer. `userName` adds the user column. */
export function CallTable(props: { calls: Call[]; userName?(id: string | null): string }) {
  const [open, setOpen] = useState<Call | null>(null);
  const money = useMoney();
  return (
    <>
      <table className="calls">
        <thead>
          <tr>
            <th>{t('call.time')}</th>
            {props.userName && <th>{t('call.user')}</th>}
            <th>{t('call.app')}</th>
            <th>{t('call.model')}</th>
            <th>{t('call.status')}</th>
            <th className="num">{t('call.tokensInOut')}</th>
            <th className="num">{t('call.credits')}</th>
            <th className="num">{t('call.ttfb')}</th>
            <th className="num">{t('call.duration')}</th>
          </tr>
        </thead>
        <tbody>
          {props.calls.length === 0 && (
            <tr>
              <td colSpan={9} className="muted">
                {t('call.none')}
              </td>
            </tr>
          )}
          {props.calls.map((c) => (
            <tr key={c.id} className="clickable" data-call={c.call_id} onClick={() => setOpen(c)}>
              <td>{formatTime(c.created_at)}</td>
              {props.userName && <td>{props.userName(c.user_id)}</td>}
              <td>{c.app ?? ''}</td>
              <td>{c.model}</td>
              <td>
                <StatusBadge call={c} />
              </td>
              <td className="num">
                {count(c.input_tokens)} / {count(c.output_tokens)}
              </td>
              <td className="num">{money(c.credits)}</td>
              <td className="num">{ms(c.ttfb_ms)}</td>
              <td className="num">{ms(c.duration_ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {open && <CallDrawer call={open} userName={props.userName} onClose={() => setOpen(null)} />}
    </>
  );
}

function CallDrawer(props: { call: Call; userName?(id: string | null): string; onClose(): void }) {
  const c = props.call;
  const money = useMoney();
  const rows: [string, ReactNode][] = [
    [t('call.time'), formatTime(c.created_at)],
    [t('call.status'), <StatusBadge call={c} />],
    [t('call.httpStatus'), c.http_status ?? '—'],
    [t('call.model'), c.model],
    [t('call.upstreamModel'), c.upstream_model ?? '—'],
    [t('call.provider'), c.provider ?? '—'],
    [t('call.credential'), c.credential_id ?? '—'],
    [t('call.user'), props.userName ? props.userName(c.user_id) : (c.user_id ?? '—')],
    [t('call.key'), c.key_id ?? '—'],
    [t('call.app'), c.app ?? '—'],
    [t('call.endpoint'), c.stream ? t('call.endpointStream', { endpoint: c.endpoint }) : c.endpoint],
    [t('call.inputTokens'), count(c.input_tokens)],
    [t('call.outputTokens'), count(c.output_tokens)],
    [t('call.cacheReadTokens'), count(c.cache_read_tokens)],
    [
      t('call.cacheWriteTokens'),
      c.cache_write_1h_tokens
        ? t('call.cacheWrite1h', { tokens: count(c.cache_write_tokens), hour: count(c.cache_write_1h_tokens) })
        : count(c.cache_write_tokens),
    ],
    [t('call.credits'), c.estimated ? t('call.estimated', { credits: money(c.credits) }) : money(c.credits)],
    [t('call.savedByCaching'), money(c.cache_saved)],
    [
      t('call.responseCache'),
      c.response_cache === 'hit'
        ? t('call.responseCacheHit', { saved: money(c.response_cache_saved) })
        : c.response_cache === 'miss'
          ? t('call.responseCacheMiss')
          : '—',
    ],
    [t('call.ttfb'), ms(c.ttfb_ms)],
    [t('call.upstreamTtfb'), ms(c.upstream_ttfb_ms)],
    [t('call.duration'), ms(c.duration_ms)],
    [t('call.callId'), <code>{c.call_id}</code>],
    [t('call.attempt'), c.attempt],
    [t('call.requestId'), <code>{c.request_id ?? '—'}</code>],
  ];
  return (
    <Drawer title={t('call.drawer')} onClose={props.onClose}>
      <dl className="details">
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      {c.error && (
        <>
          <h3>{t('call.error')}</h3>
          <pre className="error">{c.error}</pre>
        </>
      )}
    </Drawer>
  );
}

const COLUMNS: (keyof Call)[] = [
  'created_at',
  'call_id',
  'attempt',
  'request_id',
  'user_id',
  'key_id',
  'app',
  'provider',
  'credential_id',
  'model',
  'endpoint',
  'stream',
  'status',
  'http_status',
  'input_tokens',
  'output_tokens',
  'cache_read_tokens',
  'cache_write_tokens',
  'credits',
  'estimated',
  'ttfb_ms',
  'upstream_ttfb_ms',
  'duration_ms',
  'alias',
  'upstream_model',
  'error',
];

export function callsCsv(calls: Call[]): string {
  return toCsv(
    COLUMNS,
    calls.map((c) => COLUMNS.map((k) => (k === 'credits' ? normalize(c.credits) : c[k]))),
  );
}
