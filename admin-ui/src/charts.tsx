/** Small SVG charts: a time series (bars or lines) and a ranked bar list. */

import { useState } from 'react';
import { compact } from './format';
import { t } from './i18n';

export interface Series {
  name: string;
  color: string;
  values: number[];
  /** How the value of bucket `i` reads in the tooltip; defaults to the scale's format. */
  format?: (v: number, i: number) => string;
}

const W = 640;
const H = 200;
const PAD = { left: 60, right: 8, top: 10, bottom: 24 };

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 2.5, 5, 10].find((m) => m * p >= v) ?? 10) * p;
}

/**
 * Values per bucket: stacked bars, or one line per series. `labels` go under
 * the axis, `titles` head the tooltip.
 */
export function TimeChart(props: {
  labels: string[];
  titles: string[];
  series: Series[];
  kind: 'bars' | 'lines';
  format?: (v: number) => string;
}) {
  const { labels, titles, series, kind, format = compact } = props;
  const [hover, setHover] = useState<number | null>(null);
  const n = labels.length;
  const heights = labels.map((_, i) =>
    kind === 'bars'
      ? series.reduce((t, s) => t + s.values[i], 0)
      : Math.max(0, ...series.map((s) => s.values[i])),
  );
  const max = niceMax(Math.max(0, ...heights));
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const bw = iw / Math.max(n, 1);
  const x = (i: number) => PAD.left + bw * i;
  const y = (v: number) => PAD.top + ih - (v / max) * ih;
  const every = Math.ceil(n / 8);

  return (
    <div className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={series.map((s) => s.name).join(', ')}>
        {[0, 0.5, 1].map((f) => (
          <g key={f} className="grid">
            <line x1={PAD.left} x2={W - PAD.right} y1={y(max * f)} y2={y(max * f)} />
            <text x={PAD.left - 6} y={y(max * f) + 4} textAnchor="end">
              {format(max * f)}
            </text>
          </g>
        ))}
        {labels.map((label, i) =>
          i % every === 0 ? (
            <text key={i} className="axis" x={x(i) + bw / 2} y={H - 6} textAnchor="middle">
              {label}
            </text>
          ) : null,
        )}
        {kind === 'bars'
          ? labels.map((_, i) => {
              let base = 0;
              return series.map((s) => {
                const v = s.values[i];
                const top = y(base + v);
                const h = y(base) - top;
                base += v;
                return v > 0 ? (
                  <rect key={`${s.name}${i}`} x={x(i) + bw * 0.15} width={bw * 0.7} y={top} height={h} fill={s.color} />
                ) : null;
              });
            })
          : series.map((s) => (
              <polyline
                key={s.name}
                fill="none"
                stroke={s.color}
                strokeWidth={2}
                points={s.values.map((v, i) => `${x(i) + bw / 2},${y(v)}`).join(' ')}
              />
            ))}
        {hover !== null && <rect className="hover" x={x(hover)} width={bw} y={PAD.top} height={ih} />}
        {labels.map((_, i) => (
          <rect
            key={i}
            x={x(i)}
            width={bw}
            y={PAD.top}
            height={ih}
            fill="transparent"
            onMouseEnter={() => setHover(i)}
            onMouseLeave={() => setHover(null)}
          />
        ))}
      </svg>
      {hover !== null && (
        <div className="tooltip" style={{ left: `${((x(hover) + bw / 2) / W) * 100}%` }}>
          <strong>{titles[hover]}</strong>
          {series.map((s) => (
            <div key={s.name}>
              <i style={{ background: s.color }} />
              {s.name}: {(s.format ?? format)(s.values[hover], hover)}
            </div>
          ))}
        </div>
      )}
      <div className="legend">
        {series.map((s) => (
          <span key={s.name}>
            <i style={{ background: s.color }} />
            {s.name}
          </span>
        ))}
      </div>
    </div>
  );
}

export interface BarRow {
  label: string;
  value: number;
  text: string;
}

/** Rows ranked by value, each with a bar proportional to the largest. */
export function BarList({ rows, empty }: { rows: BarRow[]; empty?: string }) {
  if (!rows.length) return <p className="muted">{empty ?? t('usage.noData')}</p>;
  const max = Math.max(...rows.map((r) => r.value)) || 1;
  return (
    <ul className="barlist">
      {rows.map((r) => (
        <li key={r.label}>
          <div className="bar" style={{ width: `${(r.value / max) * 100}%` }} />
          <span className="label" title={r.label}>
            {r.label}
          </span>
          <span className="value">{r.text}</span>
        </li>
      ))}
    </ul>
  );
}
