/**
 * `npm install`'s last step: what the first `npm start` would otherwise do itself, made once here so that a
 * fresh clone starts as fast as a restart. Both are caches: on failure this says so and exits 0, and
 * `npm start` does the work as before (`--strict`: exit 1 instead, for the footprint benchmark).
 * - the web client's production build (`web/dist`), unless it is already newer than its sources;
 * - the PGlite template cluster, past `initdb`, that the API copies for its first embedded database
 *   (api/src/db/pglite-template.ts), and the one of Ponder's own PGlite version (ponder-pglite.ts).
 */
import { preparePgliteTemplate } from '@chainmeter/api/db/orm';
import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import { preparePonderPgliteTemplate } from './ponder-pglite.ts';

const steps: [string, () => unknown][] = [
  ['building the web client (web/dist)', ensureWebBuild],
  ['preparing the embedded database (PGlite, past initdb)', preparePgliteTemplate],
  ["preparing the indexer's embedded database (Ponder's PGlite, past initdb)", preparePonderPgliteTemplate],
];
let failed = false;
for (const [what, step] of steps) {
  const started = Date.now();
  console.log(`chainmeter: ${what}...`);
  try {
    await step();
    console.log(`chainmeter: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    failed = true;
    console.warn(`chainmeter: could not finish (npm start will do it): ${(error as Error).message}`);
  }
}
if (failed && process.argv.includes('--strict')) process.exitCode = 1;
