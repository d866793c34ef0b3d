/**
 * `npm run bench`: every benchmark, one after another, each printing a table. Not part of `npm test`:
 * timing targets live here. `npm run bench -- crediting` runs one.
 */

import { benchAudit } from './bench/audit.ts';
import { benchCrediting } from './bench/crediting.ts';
import { benchReadPath } from './bench/read-path.ts';
import { benchWebhooks } from './bench/webhooks.ts';
import { benchX402 } from './bench/x402.ts';
import { benchGateway } from './bench-gateway.ts';

const benches: Record<string, () => Promise<void>> = {
  audit: benchAudit,
  crediting: benchCrediting,
  gateway: benchGateway,
  readPath: benchReadPath,
  x402: benchX402,
  webhooks: benchWebhooks,
};

const only = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const unknown = only.filter((name) => !(name in benches));
if (unknown.length > 0) {
  console.error(`Unknown benchmark ${unknown.join(', ')}: choose from ${Object.keys(benches).join(', ')}`);
  process.exit(2);
}
for (const [name, run] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  console.log(`\n=== ${name} ===`);
  try {
    await run();
  } catch (error) {
    console.error(`The ${name} benchmark could not run: ${(error as Error).message}`);
    process.exit(2);
  }
}
process.exit(0);
