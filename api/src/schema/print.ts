/**
 * Prints the Pothos schema to `schema/schema.graphql`, the checked-in contract the web client and
 * integrators generate from. `--check` fails (exit 1) when the file is stale instead of writing it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { schema } from './index.ts';

const target = fileURLToPath(new URL('../../../schema/schema.graphql', import.meta.url));
const printed = `${printSchema(lexicographicSortSchema(schema))}\n`;

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {}
  if (current !== printed) {
    console.error('schema/schema.graphql is stale: run `npm run schema:print` and commit it.');
    process.exit(1);
  }
  console.log('schema/schema.graphql is up to date');
} else {
  writeFileSync(target, printed);
  console.log(`wrote ${target}`);
}
