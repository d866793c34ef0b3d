/** Small helpers shared by the benchmarks: percentiles and a printed table. */
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
