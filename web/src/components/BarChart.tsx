/**
 * A small accessible bar chart: a labelled list of bars, values as exact credit strings. Bar lengths
 * are geometry, not money, so a float ratio is fine there.
 */
import { parseCredits } from '@chainmeter/schema';
import { displayCredits } from '../lib/format';

export interface Bar {
  label: string;
  value: string;
  detail?: string;
}

export function BarChart({ title, bars, empty }: { title: string; bars: readonly Bar[]; empty: string }) {
  const values = bars.map((bar) => parseCredits(bar.value));
  // biome-ignore lint/complexity/useMathMinMax: bigints; Math.max takes numbers only
  const max = values.reduce((a, b) => (b > a ? b : a), 0n);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      {bars.length === 0 ? (
        <p className="muted small">{empty}</p>
      ) : (
        <ul className="bars">
          {bars.map((bar, index) => {
            const value = values[index] ?? 0n;
            const percent = max > 0n ? Number((value * 10_000n) / max) / 100 : 0;
            return (
              <li key={bar.label} className="bar-row">
                <span className="bar-label" title={bar.label}>
                  {bar.label}
                </span>
                <span className="bar-track" aria-hidden="true">
                  <span
                    className="bar-fill"
                    style={{ width: `${Math.max(percent, value > 0n ? 1.5 : 0)}%` }}
                  />
                </span>
                <span className="bar-value">
                  {displayCredits(bar.value)}
                  {bar.detail && <span className="muted small"> · {bar.detail}</span>}
                </span>
              </li>
            );
          })}
        </ul>
      )}
    </figure>
  );
}
