/**
 * Typed GraphQL operations for the web client, generated from the API's checked-in schema.
 * `npm run codegen -w web` writes `src/gql/`; `npm run codegen:check -w web` fails when it is stale.
 */
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../schema/schema.graphql',
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
          Address: '`0x${string}`',
          Hash: '`0x${string}`',
          BigInt: 'string',
          Credits: 'string',
          DateTime: 'string',
        },
      },
    },
  },
  hooks: { afterAllFileWrite: ['biome format --write'] },
};

export default config;
