/** Small helpers shared by the benchmarks: percentiles, a printed table, a process's CPU time. */
import { readFileSync } from 'node:fs';

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function printTable(title: string, rows: Record<string, string | number>[]): void {
  console.log(`\n${title}`);
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0] as object);
  const width = (column: string) => Math.max(column.length, ...rows.map((row) => String(row[column]).length));
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  console.log(line(columns.map((column) => column.padEnd(width(column)))));
  console.log(line(columns.map((column) => '-'.repeat(width(column)))));
  for (const row of rows)
    console.log(line(columns.map((column) => String(row[column]).padEnd(width(column)))));
}

export const ms = (value: number) => `${value.toFixed(1)} ms`;

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc (Linux); null elsewhere. Per request
 * it says what a server costs, which the throughput on a shared 2-core machine says only through the noise.
 */
export function cpuMsOf(pid: number | undefined): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    // utime and stime are fields 14 and 15 of stat, in clock ticks (USER_HZ, 100 on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}
