/**
 * The Pothos builder: plugins, the context type, scalars' shapes and auth scopes. No types live here;
 * each domain module adds its own in `<domain>.schema.ts`.
 */

import type { MicroUsd } from '@chainmeter/schema';
import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import type { Address, Hex } from 'viem';
import type { GraphQLContext } from '../context.ts';
import { forbidden, unauthenticated } from '../errors.ts';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  DefaultFieldNullability: false;
  AuthScopes: { authenticated: boolean; auditor: boolean };
  Scalars: {
    Credits: { Input: MicroUsd; Output: bigint };
    Address: { Input: Address; Output: string };
    Hash: { Input: Hex; Output: string };
    BigInt: { Input: bigint; Output: bigint };
    DateTime: { Input: Date; Output: Date };
    ID: { Input: string; Output: string };
  };
}>({
  // scope-auth must run first so that no other plugin resolves anything for an unauthorized caller.
  plugins: [ScopeAuthPlugin, RelayPlugin, DataloaderPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    // Check subscriptions once, when the client subscribes, not on every event.
    authorizeOnSubscribe: true,
    authScopes: (context) => ({
      authenticated: context.viewer !== null,
      auditor: context.viewer?.role === 'auditor',
    }),
    unauthorizedError: (_parent, context) =>
      context.viewer === null ? unauthenticated() : forbidden('This needs the auditor role'),
  },
  relay: {
    cursorType: 'String',
    clientMutationId: 'omit',
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
