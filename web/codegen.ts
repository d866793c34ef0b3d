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
