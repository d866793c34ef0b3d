/**
 * Test clusters that start fast: a copy of the initdb'd template (`src/db/pglite-template.ts`), made by
 * `npm install` or, when missing, by whichever test file gets there first while the others wait for it.
 */
import path from 'node:path';
import { preparePgliteTemplate } from '../../src/db/orm.ts';
import { seedFromPgliteTemplate } from '../../src/db/pglite-template.ts';

/**
 * Fills `dataDir` (which must not exist yet, or be empty) with a copy of the initdb'd template cluster.
 * `dataDir` is what `createOrm({ pgliteDataDir })` opens: for an API process, `<DATA_DIR>/api`.
 */
export async function seedPgliteDataDir(dataDir: string): Promise<void> {
  await preparePgliteTemplate();
  if (!seedFromPgliteTemplate(dataDir)) throw new Error(`${dataDir} already holds data: not seeded`);
}

/** Seeds the API's PGlite cluster under `DATA_DIR` (see `app-services.ts`: `<DATA_DIR>/api`). */
export function seedApiDataDir(apiDataDir: string): Promise<void> {
  return seedPgliteDataDir(path.join(apiDataDir, 'api'));
}
