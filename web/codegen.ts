/**
 * Typed GraphQL operations for the web client, generated from the API's checked-in schema.
 * `npm run codegen -w web` writes `src/gql/`; `npm run codegen:check -w web` fails when it is stale.
 */
import { readFileSync } from 'node:fs';
import type { CodegenConfig } from '@graphql-codegen/cli';

const SCHEMA = '../schema/schema.graphql';
// Until the API's schema has the metering operations, the pages for them are typed against
// CONTRACT.md's names (contract/metering.graphql); the real schema wins as soon as it has them.
const meteringInSchema = /\bcreateCompletion\b/.test(readFileSync(new URL(SCHEMA, import.meta.url), 'utf8'));

const config: CodegenConfig = {
  schema: meteringInSchema ? [SCHEMA] : [SCHEMA, 'contract/metering.graphql'],
  documents: ['src/**/*.{ts,tsx}', '!src/gql/**'],
  ignoreNoDocuments: false,
  generates: {
    './src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: { unmaskFunctionName: 'getFragmentData' } },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        skipTypename: false,
        strictScalars: true,
        scalars: {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a TypeScript template literal type, as text
          Address: '`0x${string}`',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: as above
          Hash: '`0x${string}`',
          BigInt: 'string',
          Credits: 'string',
          DateTime: 'string',
        },
      },
    },
  },
};

export default config;
