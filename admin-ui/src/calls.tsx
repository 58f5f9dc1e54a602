/** The call log as a table, the detail drawer of one call, and its CSV. */

import { useState, type ReactNode } from 'react';
import type { Call } from './api';
import { toCsv } from './csv';
import { count, ms } from './format';
import { normalize } from './money';
import { formatTime } from './time';
import { Badge, Drawer, useMoney, type Tone } from './ui';

const TONE: Record<Call['status'], Tone> = { success: 'ok', failed: 'bad', aborted: 'warn' };

function StatusBadge({ call }: { call: Call }) {
  return (
    <Badge tone={TONE[call.status]}>
      {call.status}
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
            <th>Time</th>
            {props.userName && <th>User</th>}
            <th>App</th>
            <th>Model</th>
            <th>Status</th>
            <th className="num">Tokens in / out</th>
            <th className="num">Credits</th>
            <th className="num">TTFB</th>
            <th className="num">Duration</th>
          </tr>
        </thead>
        <tbody>
          {props.calls.length === 0 && (
            <tr>
              <td colSpan={9} className="muted">
                No calls match.
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
    ['Time', formatTime(c.created_at)],
    ['Status', <StatusBadge call={c} />],
    ['HTTP status', c.http_status ?? '—'],
    ['Model', c.model],
    ['Provider', c.provider ?? '—'],
    ['Credential', c.credential_id ?? '—'],
    ['User', props.userName ? props.userName(c.user_id) : (c.user_id ?? '—')],
    ['Key', c.key_id ?? '—'],
    ['App', c.app ?? '—'],
    ['Endpoint', `${c.endpoint}${c.stream ? ' (stream)' : ''}`],
    ['Input tokens', count(c.input_tokens)],
    ['Output tokens', count(c.output_tokens)],
    ['Cache read tokens', count(c.cache_read_tokens)],
    ['Cache write tokens', `${count(c.cache_write_tokens)}${c.cache_write_1h_tokens ? ` (${count(c.cache_write_1h_tokens)} for 1 hour)` : ''}`],
    ['Credits', `${money(c.credits)}${c.estimated ? ' (estimated)' : ''}`],
    ['Saved by caching', money(c.cache_saved)],
    ['TTFB', ms(c.ttfb_ms)],
    ['Upstream TTFB', ms(c.upstream_ttfb_ms)],
    ['Duration', ms(c.duration_ms)],
    ['Call ID', <code>{c.call_id}</code>],
    ['Attempt', c.attempt],
    ['Request ID', <code>{c.request_id ?? '—'}</code>],
  ];
  return (
    <Drawer title="Call" onClose={props.onClose}>
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
          <h3>Error</h3>
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
  'error',
];

export function callsCsv(calls: Call[]): string {
  return toCsv(
    COLUMNS,
    calls.map((c) => COLUMNS.map((k) => (k === 'credits' ? normalize(c.credits) : c[k]))),
  );
}
