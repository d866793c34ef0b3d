/**
 * A fake ChainMeter API for browser tests of the metering pages: the real schema served by graphql-yoga
 * over in-memory state, and the production build on the same origin. The real-stack journey is
 * payment.test.ts; this one drives the pages through states the real stack rarely shows (several days
 * and models of usage, validation errors) in a few seconds.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSchema, createYoga } from 'graphql-yoga';

const WEB = fileURLToPath(new URL('..', import.meta.url));
const SCHEMA = readFileSync(path.join(WEB, '..', 'schema', 'schema.graphql'), 'utf8');

export interface FakeApi {
  url: string;
  /** Sets what the account owes after a deep reorg (micro-USD). */
  setDebt(microUsd: bigint): void;
  /** The authorizations the last `setAutoTopUp` stored, as the browser sent them. */
  autoTopUpAuthorizations(): Record<string, string>[];
  /** Pauses the stored auto top-up, as a failed submission would. */
  pauseAutoTopUp(reason: string): void;
  close(): Promise<void>;
}

interface ApiKeyRow {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  expiresAt: string | null;
  spendLimit: string | null;
  spent: string;
  scope: 'ACCOUNT' | 'AUDITOR';
  limitReset: string | null;
  allowedModels: string[] | null;
  spentThisPeriod: string;
}

const MIME: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.map': 'application/json',
};

/** Resolvers a test adds to the fake API (merged per type over the base ones), given the session state. */
export type ExtraResolvers = (session: { signedIn(): boolean }) => Record<string, Record<string, unknown>>;

export async function startFakeApi(
  walletAddress: string,
  chainId = 31337,
  options: {
    /** The web build to serve; default web/dist. */
    dist?: string;
    /** The token paymentConfig names (a real one on a test's anvil); default the devnet's first deployment. */
    tokenAddress?: string;
    /** More resolvers (e.g. the operators' part, `fake-operations.ts`). */
    extraResolvers?: ExtraResolvers;
  } = {},
): Promise<FakeApi> {
  const signedIn = { value: false };
  const withExtra = (base: Record<string, Record<string, unknown>>) => {
    const merged = { ...base };
    const extra = options.extraResolvers?.({ signedIn: () => signedIn.value }) ?? {};
    for (const [type, fields] of Object.entries(extra)) merged[type] = { ...merged[type], ...fields };
    return merged;
  };
  // micro-USD, exact; Credits strings are micro-USD / 1000.
  let balance = 10_000_000n;
  let debt = 0n;
  let lowBalanceThreshold: bigint | null = null;
  let autoTopUp: {
    threshold: string;
    remaining: number;
    paused: boolean;
    pausedReason: string | null;
    nonces: string[];
  } | null = null;
  let storedAuthorizations: Record<string, string>[] = [];
  const credits = (micro: bigint) => {
    const whole = micro / 1000n;
    const fraction = (micro % 1000n).toString().padStart(3, '0').replace(/0+$/, '');
    return fraction ? `${whole}.${fraction}` : whole.toString();
  };
  const apiKeys: ApiKeyRow[] = [];
  const usage: Record<string, unknown>[] = [];
  const day = (offset: number) => new Date(Date.now() - offset * 86_400_000).toISOString();
  for (const [i, model] of ['chainmeter-dev', 'chainmeter-dev-large', 'chainmeter-dev'].entries()) {
    usage.push({
      id: `u${i}`,
      requestId: `req_${i}`,
      model,
      promptTokens: 40 + i,
      completionTokens: 120 + i,
      providerCost: credits(BigInt(600 + i * 900)),
      userPrice: credits(BigInt(1200 + i * 1800)),
      billingStatus: 'BILLED',
      apiKey: null,
      createdAt: day(3 - i),
    });
  }
  const account = () => ({
    id: 'acct-1',
    walletAddress,
    balance: credits(balance),
    debt: credits(debt),
    lowBalanceThreshold: lowBalanceThreshold === null ? null : credits(lowBalanceThreshold),
    autoTopUp,
    // A plain wallet's session: the real API's answer for anyone without the auditor role.
    availableApiKeyScopes: ['ACCOUNT'],
  });
  const micro = (creditsText: string) => {
    const [whole = '0', fraction = ''] = creditsText.split('.');
    return BigInt(whole) * 1000n + BigInt(fraction.padEnd(3, '0'));
  };
  const summary = (groupBy: string) => {
    const buckets = new Map<string, { requests: number; micro: bigint }>();
    for (const row of usage) {
      const key = groupBy === 'DAY' ? String(row.createdAt).slice(0, 10) : String(row.model);
      const bucket = buckets.get(key) ?? { requests: 0, micro: 0n };
      const [whole = '0', fraction = ''] = String(row.userPrice).split('.');
      bucket.micro += BigInt(whole) * 1000n + BigInt(fraction.padEnd(3, '0'));
      bucket.requests += 1;
      buckets.set(key, bucket);
    }
    return [...buckets].map(([key, b]) => ({ key, requests: b.requests, userPrice: credits(b.micro) }));
  };

  const yoga = createYoga({
    graphqlEndpoint: '/graphql',
    schema: createSchema({
      typeDefs: SCHEMA,
      resolvers: withExtra({
        Query: {
          paymentConfig: () => ({
            chainId,
            tokenAddress: options.tokenAddress ?? '0x5FbDB2315678afecb367f032d93F642f64180aa3',
            tokenDecimals: 6,
            treasuryAddress: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
            confirmations: 2,
            creditsPerToken: '1000',
          }),
          me: () => (signedIn.value ? account() : null),
        },
        Account: {
          deposits: () => ({ edges: [], pageInfo: { hasNextPage: false, hasPreviousPage: false } }),
          ledger: () => ({ edges: [], pageInfo: { hasNextPage: false, hasPreviousPage: false } }),
          apiKeys: () => [...apiKeys].reverse(),
          usage: (_: unknown, args: { filter?: { model?: string | null } }) => ({
            edges: [...usage]
              .reverse()
              .filter((row) => !args.filter?.model || row.model === args.filter.model)
              .map((node) => ({ cursor: String(node.id), node })),
            pageInfo: { hasNextPage: false, hasPreviousPage: false },
          }),
          usageSummary: (_: unknown, args: { groupBy: string }) => summary(args.groupBy),
        },
        Mutation: {
          siweChallenge: (_: unknown, args: { address: string }) =>
            `127.0.0.1 wants you to sign in with your Ethereum account:\n${args.address}\n\nFake API.`,
          signIn: () => {
            signedIn.value = true;
            return { token: 'fake', expiresAt: day(-1), account: account() };
          },
          setAutoTopUp: (
            _: unknown,
            args: { input: { threshold: string; authorizations: Record<string, string>[] } },
          ) => {
            storedAuthorizations = args.input.authorizations;
            autoTopUp = {
              threshold: args.input.threshold,
              remaining: storedAuthorizations.length,
              paused: false,
              pausedReason: null,
              nonces: storedAuthorizations.map((a) => String(a.nonce)),
            };
            return autoTopUp;
          },
          cancelAutoTopUp: () => {
            const existed = autoTopUp !== null;
            autoTopUp = null;
            storedAuthorizations = [];
            return existed;
          },
          setLowBalanceAlert: (_: unknown, args: { threshold?: string | null }) => {
            lowBalanceThreshold = args.threshold ? micro(args.threshold) : null;
            return account();
          },
          signOut: () => {
            signedIn.value = false;
            return true;
          },
          createCompletion: (
            _: unknown,
            args: { input: { model: string; messages: { content: string }[] } },
          ) => {
            const price = 2_468n;
            balance -= price;
            const row = {
              id: `u${usage.length}`,
              requestId: `req_${usage.length}`,
              model: args.input.model,
              promptTokens: 12,
              completionTokens: 34,
              providerCost: credits(price / 2n),
              userPrice: credits(price),
              billingStatus: 'BILLED',
              apiKey: null,
              createdAt: new Date().toISOString(),
            };
            usage.push(row);
            const last = args.input.messages.at(-1)?.content ?? '';
            return { id: row.id, model: row.model, content: `Echo: ${last}`, usage: row };
          },
          createApiKey: (
            _: unknown,
            args: {
              input: {
                name: string;
                spendLimit?: string | null;
                limitReset?: string | null;
                allowedModels?: string[] | null;
              };
            },
          ) => {
            const key: ApiKeyRow = {
              id: `k${apiKeys.length + 1}`,
              name: args.input.name,
              prefix: `cm_fake${apiKeys.length + 1}`,
              createdAt: new Date().toISOString(),
              lastUsedAt: null,
              revokedAt: null,
              expiresAt: null,
              spendLimit: args.input.spendLimit ?? null,
              spent: '0',
              scope: 'ACCOUNT',
              limitReset: args.input.limitReset ?? null,
              allowedModels: args.input.allowedModels ?? null,
              spentThisPeriod: '0',
            };
            apiKeys.push(key);
            return { apiKey: key, secret: `${key.prefix}_secret_${'x'.repeat(32)}` };
          },
          revokeApiKey: (_: unknown, args: { id: string }) => {
            const key = apiKeys.find((k) => k.id === args.id);
            if (!key) throw new Error('not found');
            key.revokedAt = new Date().toISOString();
            return key;
          },
        },
        Subscription: {
          balanceUpdated: { subscribe: async function* () {} },
          depositUpdated: { subscribe: async function* () {} },
        },
      }),
    }),
    logging: false,
  });

  const dist = options.dist ?? path.join(WEB, 'dist');
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/graphql') {
      // Like the real API (api/src/http/csrf.ts): the session rides only requests a browser preflights.
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
      if (!req.headers['x-graphql-yoga-csrf'] && contentType !== 'application/json') {
        res.writeHead(403, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ errors: [{ message: 'CSRF header or JSON body required' }] }));
      }
      return void yoga(req, res);
    }
    if (url.pathname === '/v1/models') {
      res.setHeader('content-type', 'application/json');
      return void res.end(
        JSON.stringify({ data: [{ id: 'chainmeter-dev' }, { id: 'chainmeter-dev-large' }] }),
      );
    }
    const file = path.join(dist, path.normalize(url.pathname).replace(/^(\.\.[/\\])+/, ''));
    let body: Buffer;
    let type = 'text/html';
    try {
      body = readFileSync(file);
      type = MIME[path.extname(file)] ?? 'application/octet-stream';
    } catch {
      try {
        body = readFileSync(path.join(dist, 'index.html'));
      } catch {
        // The build is gone (a test removed its own after closing its page; a late request may still come).
        res.statusCode = 404;
        return void res.end();
      }
    }
    res.setHeader('content-type', type);
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    setDebt: (microUsd) => {
      debt = microUsd;
    },
    autoTopUpAuthorizations: () => storedAuthorizations,
    pauseAutoTopUp: (reason) => {
      if (autoTopUp) {
        autoTopUp = {
          ...autoTopUp,
          paused: true,
          pausedReason: reason,
          remaining: autoTopUp.remaining - 1,
          nonces: autoTopUp.nonces.slice(1),
        };
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
