/**
 * A PGlite data directory that starts fast. A fresh PGlite 0.5 cluster runs `initdb` in WebAssembly first:
 * ~7-10 s of CPU and a ~1.1 GB peak (it runs in a second, in-memory instance, then copies the result to disk)
 * for every API that starts on an empty `DATA_DIR`. A copy of a cluster that has been through `initdb` and
 * nothing else (no table, no migration) opens in about a second, and is exactly what `initdb` would have made.
 *
 * `npm install` makes the template once (scripts/src/postinstall.ts), in `node_modules/.cache` beside the
 * PGlite that made it, named by its version: a cluster belongs to the PGlite version that made it, and a
 * reinstall or an upgrade leaves the old one behind. `createOrm` seeds an empty data directory from it when
 * it is there, and runs `initdb` itself when it is not. Tests seed their clusters from it too.
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Which PGlite: the copy of `@electric-sql/pglite` that resolves from `from` (a file path or URL). The default
 * is the API's own; Ponder depends on an older version of its own, and its template is made and seeded by the
 * same functions given a path inside Ponder's package (scripts/src/ponder-pglite.ts).
 */
const API_PGLITE: string = import.meta.url;

/** The PGlite package that resolves from `from`, and its version. */
function pglitePackage(from: string): { dir: string; version: string } {
  const entry = createRequire(from).resolve('@electric-sql/pglite');
  let dir = path.dirname(entry);
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  const { version } = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string };
  return { dir, version };
}

/** Where the template of this PGlite version lives (whether or not it has been made). */
export function pgliteTemplateDir(from: string = API_PGLITE): string {
  const { dir, version } = pglitePackage(from);
  let modules = dir;
  while (path.basename(modules) !== 'node_modules' && path.dirname(modules) !== modules)
    modules = path.dirname(modules);
  return path.join(modules, '.cache', 'chainmeter', `pglite-template-${version}`);
}

/** A data directory holds a cluster once `initdb` wrote its version file. */
function hasCluster(dataDir: string): boolean {
  return existsSync(path.join(dataDir, 'PG_VERSION'));
}

/**
 * Makes the template when it is missing, with `initCluster` (its owner's own way of opening that PGlite on a
 * data directory, closed right after `initdb`). Several processes may ask at once (parallel test files): one
 * makes it under a lock directory while the others wait (bounded), and it is renamed into place whole, so
 * nobody ever copies a half-made one. Returns its path.
 */
export async function ensurePgliteTemplate(
  initCluster: (dataDir: string) => Promise<void>,
  from: string = API_PGLITE,
): Promise<string> {
  const dir = pgliteTemplateDir(from);
  const lock = `${dir}.lock`;
  const deadline = Date.now() + 120_000;
  mkdirSync(path.dirname(dir), { recursive: true });
  while (!hasCluster(dir)) {
    try {
      mkdirSync(lock);
    } catch {
      // Another process is making it; a lock older than the deadline is left over from a killed run.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 120_000)
        rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`${lock} is held: is another PGlite template build stuck?`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    try {
      if (!hasCluster(dir)) {
        const building = `${dir}.${process.pid}.${Date.now()}`;
        try {
          await initCluster(building);
          rmSync(dir, { recursive: true, force: true });
          renameSync(building, dir);
        } finally {
          rmSync(building, { recursive: true, force: true });
        }
      }
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  return dir;
}

const SEEDING = '.seeding-';

/** Whether process `pid` is alive (one we may not signal is). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Copies of the template beside `dataDir` that a process which died mid-copy left (this one's too). */
function removeAbandonedCopies(dataDir: string): void {
  const prefix = `${path.basename(dataDir)}${SEEDING}`;
  for (const name of readdirSync(path.dirname(dataDir))) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (Number.isInteger(pid) && (pid === process.pid || !isAlive(pid)))
      rmSync(path.join(path.dirname(dataDir), name), { recursive: true, force: true });
  }
}

/**
 * Fills `dataDir` with a copy of the template when `dataDir` holds no cluster yet (missing or empty) and
 * the template exists. The copy goes to a sibling first and is renamed into place, so a crash mid-copy
 * leaves no half cluster behind; the next seeding removes such a sibling. Returns whether it seeded.
 */
export function seedFromPgliteTemplate(dataDir: string, from: string = API_PGLITE): boolean {
  const template = pgliteTemplateDir(from);
  if (!hasCluster(template) || hasCluster(dataDir)) return false;
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) return false; // not ours to touch
  mkdirSync(path.dirname(dataDir), { recursive: true });
  removeAbandonedCopies(dataDir);
  const copying = `${dataDir}${SEEDING}${process.pid}`;
  cpSync(template, copying, { recursive: true });
  rmSync(dataDir, { recursive: true, force: true });
  renameSync(copying, dataDir);
  return true;
}
