/**
 * An up-to-date production build of the web client, for every test that serves or drives it: the API's
 * security-header test, the browser tests and the bundle-size budget. It lives here, not in `web/`, because
 * `api` tests need it and `web` tests start the API: a web-owned helper would make the two depend on each
 * other. The web workspace is found by its place in the repository, as the indexer is in `devnet/indexer.ts`.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WEB = path.join(ROOT, 'web');

function newestMtime(target: string): number {
  const stat = statSync(target);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(target)) newest = Math.max(newest, newestMtime(path.join(target, entry)));
  return newest;
}

/** Whether `web/dist` is there and newer than every source it is built from. */
export function isWebBuildFresh(): boolean {
  const built = path.join(WEB, 'dist', 'index.html');
  const sources = [
    path.join(WEB, 'src'),
    path.join(WEB, 'index.html'),
    path.join(WEB, 'vite.config.ts'),
    path.join(ROOT, 'schema', 'src'),
  ];
  return existsSync(built) && statSync(built).mtimeMs >= Math.max(...sources.map(newestMtime));
}

/**
 * Builds `web/dist` when it is missing or older than any of its sources: `npm install`'s postinstall,
 * `npm start` (a source changed since) and the tests that serve the client all build it through this. Test
 * files run in parallel workers, so one builds under a lock directory while the others wait for it (bounded).
 * Rejects with Vite's output when the build fails.
 */
export async function ensureWebBuild(): Promise<void> {
  const lock = path.join(WEB, '.build-lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock older than the deadline is left over from a killed run.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 120_000)
        rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`${lock} is held: is another web build stuck?`);
      await sleep(100);
    }
  }
  try {
    if (isWebBuildFresh()) return;
    const vite = path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
    const { status, output } = await run(process.execPath, [vite, 'build', '--logLevel', 'warn'], {
      cwd: WEB,
      // Vitest sets NODE_ENV=test, which would make Vite bundle React's development build.
      env: { ...process.env, NODE_ENV: 'production' },
    });
    if (status !== 0) throw new Error(`web build failed:\n${output}`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Runs a command to its end: its exit status (null when it could not start) and its output, both streams. */
function run(
  command: string,
  args: string[],
  options: SpawnOptions,
): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', (error) => resolve({ status: null, output: `${output}${error.message}` }));
    child.on('close', (status) => resolve({ status, output }));
  });
}
