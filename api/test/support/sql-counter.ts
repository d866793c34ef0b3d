import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, Server } from 'node:http';
import { PostgreSqlConnection } from '@mikro-orm/postgresql';
import type { Pool, PoolClient } from 'pg';
import type { RunningApi } from '../../src/server.ts';

/** The statements one HTTP request to the API caused, whenever they ran (during or after its answer). */
export interface RequestSql {
  method: string;
  path: string;
  statements: number;
}

export interface SqlCount {
  /** Every statement the API sent since counting began, whatever caused it (background loops too). */
  count: number;
  /** The HTTP requests the API received since counting began, in arrival order, each with its statements. */
  requests: RequestSql[];
}

/** The request whose handling the current code runs for (see `tagRequests`). */
const currentRequest = new AsyncLocalStorage<{ port: number; sql: RequestSql }>();
const trackedPorts = new Map<number, SqlCount>();
let tagging = false;

/**
 * Node publishes `http.server.request.start` synchronously just before the server emits `request`, so
 * entering a store here makes everything that request's handler starts (every await, dataloader batch
 * and pool acquisition below it) run with that store: a statement is attributed to the request that
 * caused it, not to whatever else ran meanwhile.
 */
function tagRequests(): void {
  if (tagging) return;
  tagging = true;
  subscribe('http.server.request.start', (message) => {
    const { request, server } = message as { request: IncomingMessage; server: Server };
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : -1;
    const counter = trackedPorts.get(port);
    if (!counter) return;
    const sql: RequestSql = {
      method: request.method ?? '',
      path: (request.url ?? '').split('?')[0] ?? '',
      statements: 0,
    };
    counter.requests.push(sql);
    currentRequest.enterWith({ port, sql });
  });
}

function counted(counter: SqlCount, port: number): void {
  counter.count++;
  const request = currentRequest.getStore();
  if (request?.port === port) request.sql.statements++;
}

/**
 * Counts every SQL statement an in-process API sends, by whichever path: on PostgreSQL at the `pg` pool
 * that both the ORM (through Kysely) and the raw hot path (`db/sql.ts`: API keys, holds, settlements)
 * run on, one per `query` call (so db/sql.ts's `begin; <statement>` script counts once: one round trip);
 * on PGlite, where the hot path goes through the EntityManager too, through MikroORM's query log hook.
 */
export async function countSql(api: RunningApi): Promise<SqlCount> {
  const counter: SqlCount = { count: 0, requests: [] };
  tagRequests();
  trackedPorts.set(api.port, counter);
  const connection = api.services.orm.em.getConnection();
  if (connection instanceof PostgreSqlConnection) {
    const pool = (await connection.getNativeClient()) as Pool;
    // `pool.query` (the hot path's single statements) is counted where it is called: the client it
    // runs on may be handed over from another request's release, in that request's async context.
    const poolQuery = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    (pool as { query: unknown }).query = (...args: unknown[]) => {
      counted(counter, api.port);
      return poolQuery(...args);
    };
    // Every other statement runs on a checked-out client (`pool.connect()`: the ORM, hot-path
    // transactions); `acquire` fires for every checkout, new or idle, before the caller gets the client.
    const wrapped = new WeakSet<PoolClient>();
    pool.on('acquire', (client: PoolClient) => {
      if (wrapped.has(client)) return;
      wrapped.add(client);
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as { query: unknown }).query = (...args: unknown[]) => {
        // `pool.query` calls the client with a callback, and was counted above; nothing else here does.
        if (typeof args.at(-1) !== 'function') counted(counter, api.port);
        return query(...args);
      };
    });
    return counter;
  }
  const logger = api.services.orm.config.getLogger();
  const logQuery = logger.logQuery.bind(logger);
  logger.logQuery = (context) => {
    counted(counter, api.port);
    logQuery(context);
  };
  return counter;
}
