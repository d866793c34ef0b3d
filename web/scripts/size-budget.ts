/**
 * The production build's size budget, gzip: what a first visit downloads (index.html's scripts,
 * stylesheets and module preloads) and everything in the build, lazy chunks included.
 * `npm run size -w web` prints the figures and fails over budget; the test beside it runs the same check.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/**
 * The whole build grew past 240 kB with Coinbase Wallet's SDK (27 kB, downloaded only when picked) and the
 * pages for webhooks, alerts and operators; every page but the dashboard is its own lazy chunk (each
 * compressed alone, a few kB more in all), which keeps the first load near 145 kB.
 */
export const BUDGET_KB = { initial: 175, total: 260 } as const;

export interface SizeReport {
  initialKb: number;
  totalKb: number;
  files: { file: string; gzipKb: number; initial: boolean }[];
}

const DIST = fileURLToPath(new URL('../dist', import.meta.url));

function gzipKb(file: string): number {
  return Math.round((gzipSync(readFileSync(file), { level: 9 }).length / 1024) * 10) / 10;
}

export function measureBuild(dist: string = DIST): SizeReport {
  const html = readFileSync(path.join(dist, 'index.html'), 'utf8');
  const initialRefs = new Set([...html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]));
  const files = readdirSync(path.join(dist, 'assets'))
    .filter((name) => /\.(js|css)$/.test(name))
    .map((name) => {
      const file = `assets/${name}`;
      return { file, gzipKb: gzipKb(path.join(dist, file)), initial: initialRefs.has(file) };
    })
    .sort((a, b) => b.gzipKb - a.gzipKb);
  const sum = (list: typeof files) => Math.round(list.reduce((total, f) => total + f.gzipKb, 0) * 10) / 10;
  return { initialKb: sum(files.filter((f) => f.initial)), totalKb: sum(files), files };
}

export function overBudget(report: SizeReport): string[] {
  const problems: string[] = [];
  if (report.initialKb > BUDGET_KB.initial) {
    problems.push(`first load ${report.initialKb} kB gzip > budget ${BUDGET_KB.initial} kB`);
  }
  if (report.totalKb > BUDGET_KB.total)
    problems.push(`whole build ${report.totalKb} kB gzip > budget ${BUDGET_KB.total} kB`);
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const report = measureBuild();
  for (const f of report.files) console.log(`${f.initial ? '*' : ' '} ${f.file.padEnd(44)} ${f.gzipKb} kB`);
  console.log(`first load (*): ${report.initialKb} kB gzip (budget ${BUDGET_KB.initial})`);
  console.log(`whole build:    ${report.totalKb} kB gzip (budget ${BUDGET_KB.total})`);
  const problems = overBudget(report);
  for (const problem of problems) console.error(`over budget: ${problem}`);
  process.exitCode = problems.length > 0 ? 1 : 0;
}
