/** `npm run soak -- [--duration 10m] [--report <file>] [--calls-per-second N] [--deposits-per-second N]`. */
import { parseArgs } from 'node:util';
import type { SoakEnv } from '../env.ts';

export interface SoakOptions {
  durationMs: number;
  /** Where the report goes; undefined: the run's folder. */
  reportFile: string | undefined;
  callsPerSecond: number;
  depositsPerSecond: number;
  paidCallsPerSecond: number;
}

export const SOAK_USAGE = `npm run soak -- [options]
  --duration <d>             how long the load runs: 90s, 10m, 1h or seconds (default 10m; env SOAK_DURATION)
  --report <file>            also write the report there (env SOAK_REPORT); it is always in .data/soak/<run>/
  --calls-per-second <n>     metered completions per second (default 20)
  --deposits-per-second <n>  deposits per second, from 100 wallets (default 3)
  --paid-calls-per-second <n> calls paid per request with x402 (default 1; 0: none)
`;

/** `90s`, `10m`, `1h`, `500ms` or a bare number of seconds, in ms. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`a duration is a number with ms, s, m or h (e.g. 60s, 10m), not "${text}"`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  const ms = Math.round(Number(match[1]) * unit);
  if (ms < 20_000) throw new Error(`the soak needs at least 20 s of load for its faults, not ${text}`);
  return ms;
}

/** A rate: above 0 (or 0, meaning none, where `zero` allows it), at most 1000. */
function positive(name: string, text: string | undefined, fallback: number, zero = false): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!(value > 0 || (zero && value === 0)) || value > 1_000) {
    throw new Error(
      `--${name} must be a number above 0${zero ? ' (or 0: none)' : ''}, at most 1000, not "${text}"`,
    );
  }
  return value;
}

export function parseSoakOptions(argv: readonly string[], env: SoakEnv): SoakOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: 'string' },
      report: { type: 'string' },
      'calls-per-second': { type: 'string' },
      'deposits-per-second': { type: 'string' },
      'paid-calls-per-second': { type: 'string' },
    },
    strict: true,
  });
  return {
    durationMs: parseDuration(values.duration ?? env.SOAK_DURATION ?? '10m'),
    reportFile: values.report ?? env.SOAK_REPORT,
    callsPerSecond: positive('calls-per-second', values['calls-per-second'], 20),
    depositsPerSecond: positive('deposits-per-second', values['deposits-per-second'], 3),
    paidCallsPerSecond: positive('paid-calls-per-second', values['paid-calls-per-second'], 1, true),
  };
}
