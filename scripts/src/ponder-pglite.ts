/**
 * Ponder's embedded database starts from a template too, as the API's does (api/src/db/pglite-template.ts,
 * the same functions). Ponder runs its own PGlite (0.2, not the API's 0.5), whose `initdb` in WebAssembly
 * took a first start ~3-4 s with V8's optimising compiler and ~12 s on Liftoff alone (start.ts keeps
 * PGlite's WebAssembly there), where a copy of an initdb'd cluster opens in ~2 s. Ponder opens its
 * directory as a plain PGlite data directory (`createPglite` in ponder/dist/esm/utils/pglite.js), so a copy
 * of a cluster made by the same PGlite version, past `initdb` and nothing else, is what it would have made.
 *
 * `npm install` makes the template (postinstall.ts); `npm start` seeds an empty Ponder directory from it,
 * and when it is missing Ponder runs `initdb` itself, as before.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ensurePgliteTemplate,
  pgliteTemplateDir,
  seedFromPgliteTemplate,
} from '@chainmeter/api/db/pglite-template';

const INDEXER_PACKAGE = fileURLToPath(new URL('../../indexer/package.json', import.meta.url));

/**
 * Ponder's package.json as the indexer resolves it: the place its own `@electric-sql/pglite` resolves from
 * (Ponder exports no `require` entry to resolve, so the lookup walks Node's search paths).
 */
export function ponderPackageJson(): string {
  const lookup = createRequire(INDEXER_PACKAGE).resolve.paths('ponder') ?? [];
  for (const modules of lookup) {
    const candidate = path.join(modules, 'ponder', 'package.json');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('the indexer cannot resolve ponder: run npm install');
}

/** Where the template of Ponder's PGlite version lives (whether or not it has been made). */
export function ponderPgliteTemplateDir(): string {
  return pgliteTemplateDir(ponderPackageJson());
}

/** Makes the template of Ponder's PGlite when it is missing; returns its path. */
export function preparePonderPgliteTemplate(): Promise<string> {
  const from = ponderPackageJson();
  return ensurePgliteTemplate(async (dataDir) => {
    const { PGlite } = (await import(createRequire(from).resolve('@electric-sql/pglite'))) as {
      PGlite: new (options: {
        dataDir: string;
      }) => { query(sql: string): Promise<unknown>; close(): Promise<void> };
    };
    const db = new PGlite({ dataDir });
    try {
      await db.query('select 1');
    } finally {
      await db.close();
    }
  }, from);
}

/**
 * Fills Ponder's PGlite directory with a copy of the template when it holds no cluster yet and the template
 * exists (never over a directory with anything in it). Returns whether it seeded.
 */
export function seedPonderPgliteDir(dataDir: string): boolean {
  return seedFromPgliteTemplate(dataDir, ponderPackageJson());
}
