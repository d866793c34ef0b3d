/**
 * A small accessible line chart over time: one SVG, a line per series, a legend, and the exact values of
 * the newest point as text. Values are exact `Credits` strings; only the geometry (pixel positions)
 * uses floats, as in BarChart.
 */
import { formatCredits, type MicroUsd, parseCredits } from '@chainmeter/schema';
import { displayCredits } from '../lib/format';

export interface Series {
  name: string;
  /** A CSS colour. */
  color: string;
  /** One value per point, as `Credits` strings. */
  values: readonly string[];
}

const WIDTH = 640;
const HEIGHT = 220;
const PAD = { left: 8, right: 8, top: 16, bottom: 28 };

export function LineChart({
  title,
  times,
  series,
  empty,
}: {
  title: string;
  /** ISO-8601 times of the points, oldest first. */
  times: readonly string[];
  series: readonly Series[];
  empty: string;
}) {
  if (times.length === 0) {
    return (
      <figure className="chart">
        <figcaption>{title}</figcaption>
        <p className="muted small">{empty}</p>
      </figure>
    );
  }
  const parsed = series.map((s) => s.values.map((v) => parseCredits(v)));
  const all = parsed.flat();
  const first0 = all[0] ?? 0n;
  // biome-ignore lint/complexity/useMathMinMax: bigints; Math.max takes numbers only
  const max = all.reduce((a, b) => (b > a ? b : a), first0);
  // The lowest value, or 0 when every value is positive and close to it (the scale then starts at 0).
  // biome-ignore lint/complexity/useMathMinMax: bigints; Math.min takes numbers only
  const lowest = all.reduce((a, b) => (b < a ? b : a), first0);
  const min = lowest > 0n && lowest * 2n < max ? 0n : lowest;
  const span = max - min > 0n ? max - min : 1n;
  const stamps = times.map((t) => new Date(t).getTime());
  const first = stamps[0] ?? 0;
  const last = stamps[stamps.length - 1] ?? first;
  const x = (i: number) =>
    PAD.left +
    (last > first
      ? (((stamps[i] ?? first) - first) / (last - first)) * (WIDTH - PAD.left - PAD.right)
      : (WIDTH - PAD.left - PAD.right) / 2);
  const y = (value: bigint) =>
    PAD.top + (1 - Number(((value - min) * 10_000n) / span) / 10_000) * (HEIGHT - PAD.top - PAD.bottom);
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
  return (
    <figure className="chart line-chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${title}: ${times.length} points`}>
        <line className="axis" x1={PAD.left} x2={WIDTH - PAD.right} y1={y(min)} y2={y(min)} />
        {series.map((s, index) => {
          const values = parsed[index] ?? [];
          const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
          return (
            <g key={s.name}>
              <polyline fill="none" stroke={s.color} strokeWidth="2.5" points={points} />
              {values.map((v, i) => (
                <circle key={times[i]} cx={x(i)} cy={y(v)} r="3" fill={s.color} />
              ))}
            </g>
          );
        })}
        <text className="axis-label" x={PAD.left + 4} y={y(max) + 12}>
          {displayCredits(formatCredits(max as MicroUsd))}
        </text>
        <text className="axis-label" x={PAD.left + 4} y={y(min) - 4}>
          {displayCredits(formatCredits(min as MicroUsd))}
        </text>
        <text className="axis-label" x={PAD.left} y={HEIGHT - 6}>
          {day(first)} UTC
        </text>
        <text className="axis-label" x={WIDTH - PAD.right} y={HEIGHT - 6} textAnchor="end">
          {day(last)} UTC
        </text>
      </svg>
      <ul className="legend">
        {series.map((s) => (
          <li key={s.name}>
            <span className="swatch" style={{ background: s.color }} aria-hidden="true" />
            {s.name}: <strong>{displayCredits(s.values[s.values.length - 1] ?? '0')}</strong>
          </li>
        ))}
      </ul>
    </figure>
  );
}
