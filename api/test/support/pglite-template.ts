/**
 * A PGlite data directory that starts fast. A fresh PGlite 0.5 cluster runs `initdb` in WebAssembly first,
 * which costs ~7 s of CPU (15 s and more on a loaded 2-core machine) in every API that starts on an empty
 * `DATA_DIR`; a copy of a cluster that has already been through `initdb` (and nothing else: no table, no
 * migration) opens in about a second, and is then exactly what a first start would have found.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createOrm } from '../../src/db/orm.ts';

/** The version of the PGlite the API runs: a cluster belongs to the PGlite that made it. */
function pgliteVersion(): string {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@electric-sql/pglite');
  let dir = path.dirname(entry);
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

let template: Promise<string> | undefined;

/**
 * The path of the machine's template cluster, built once by whichever test file gets there first while the
 * others wait for it (a lock directory, as `web-build.ts` does); a build is renamed into place whole, so
 * nobody ever copies a half-made one.
 */
function templateDir(): Promise<string> {
  template ??= (async () => {
    const dir = path.join(tmpdir(), `chainmeter-pglite-template-${pgliteVersion()}`);
    const lock = `${dir}.lock`;
    const deadline = Date.now() + 120_000;
    while (!existsSync(dir)) {
      try {
        mkdirSync(lock);
      } catch {
        // Another file is building it; a lock older than the deadline is left over from a killed run.
        if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 120_000)
          rmSync(lock, { recursive: true, force: true });
        if (Date.now() > deadline)
          throw new Error(`${lock} is held: is another PGlite template build stuck?`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      try {
        if (!existsSync(dir)) await build(dir);
      } finally {
        rmSync(lock, { recursive: true, force: true });
      }
    }
    return dir;
  })();
  return template;
}

async function build(dir: string): Promise<void> {
  const building = `${dir}.${process.pid}.${Date.now()}`;
  // The API's own way of opening PGlite on a data directory, stopped right after initdb.
  const orm = await createOrm({ pgliteDataDir: building });
  try {
    await orm.em.fork().execute('select 1');
  } finally {
    await orm.close(true);
  }
  renameSync(building, dir);
}

/**
 * Fills `dataDir` (which must not exist yet, or be empty) with a copy of the initdb'd template cluster.
 * `dataDir` is what `createOrm({ pgliteDataDir })` opens: for an API process, `<DATA_DIR>/api`.
 */
export async function seedPgliteDataDir(dataDir: string): Promise<void> {
  const source = await templateDir();
  mkdirSync(path.dirname(dataDir), { recursive: true });
  cpSync(source, dataDir, { recursive: true });
}

/** Seeds the API's PGlite cluster under `DATA_DIR` (see `app-services.ts`: `<DATA_DIR>/api`). */
export function seedApiDataDir(apiDataDir: string): Promise<void> {
  return seedPgliteDataDir(path.join(apiDataDir, 'api'));
}
