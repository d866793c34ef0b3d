/**
 * Raw SQL for the stores: every statement is written with `$1`.. placeholders and runs here. On the hot path (API key lookup, hold, settlement) this is cheaper than `em.execute`.
 *
 * Measured on the 2-core development machine (PostgreSQL on loopback), per statement: `em.execute`
 * formats the values into the SQL text and goes through Kysely, about 130 us more than the same statement
 * on the `pg` pool; and a statement prepared once per connection (a named statement) skips PostgreSQL's
 * parse and plan, another 130 us for the hot path's CTEs. So on PostgreSQL these statements run on the
 * ORM's own `pg` pool (the same connections, the same type parsers), prepared by name, with values bound
 * as parameters (never formatted into the text).
 *
 * Everywhere else the same statement goes through the EntityManager, so nothing changes in behaviour:
 * - inside a transaction of the caller's EntityManager (the statement must belong to it);
 * - on PGlite, which is one session behind the ORM's mutex (another path into it would interleave with
 *   an open transaction).
 * Statements are written with `$1`.. placeholders; the fallback rewrites them for MikroORM and passes
 * arrays as PostgreSQL array literals (so `$1::uuid[]` works on both paths, nulls in arrays included).
 */
import { PostgreSqlConnection } from '@mikro-orm/postgresql';
import pg, { type Pool, type PoolClient, type QueryResult } from 'pg';
import type { Em, Orm } from './orm.ts';

/** A statement with a stable name, unique per text: PostgreSQL prepares it once per connection. */
export interface Statement {
  name: string;
  text: string;
}

export type Query = <Row>(statement: Statement, values: readonly unknown[]) => Promise<Row[]>;

/**
 * A transaction of exactly two statements with work in between: `first` runs, `between` computes the
 * second from its rows (or returns a plain result: nothing to write), then the second runs and the
 * transaction commits; its `done` maps the second's rows to the result, after the commit.
 */
export interface TwoRoundTripTransaction<First, Second, T> {
  first: { statement: Statement; values: readonly unknown[] };
  between(rows: First[]): { statement: Statement; values: readonly unknown[]; done(rows: Second[]): T } | T;
}

export interface SqlRunner {
  /** One statement, its own (implicit) transaction unless the EntityManager is inside one. */
  query: Query;
  /** BEGIN, `fn`, COMMIT on one connection; ROLLBACK when `fn` throws (or the caller's transaction). */
  transaction<T>(fn: (query: Query) => Promise<T>): Promise<T>;
  /**
   * A two-statement transaction in TWO round trips instead of four: on PostgreSQL, `begin; <first>` and
   * `<second>; commit` each go as one simple-protocol message (values inlined with `pg`'s literal
   * escaping, as `em.execute` does; not prepared). A failure anywhere rolls the whole transaction back.
   */
  inTwoRoundTrips<First, Second, T>(steps: TwoRoundTripTransaction<First, Second, T>): Promise<T>;
}

const { escapeLiteral } = pg;

const pools = new WeakMap<object, Promise<Pool>>();

/** The hot-path executor for `em`: the pg pool on PostgreSQL outside a transaction, else `em` itself. */
export function sqlOf(em: Em): SqlRunner {
  const connection = em.getConnection();
  if (em.isInTransaction() || !(connection instanceof PostgreSqlConnection)) return throughEm(em);
  let pool = pools.get(connection);
  if (!pool) {
    pool = connection.getNativeClient() as Promise<Pool>;
    pools.set(connection, pool);
  }
  return throughPool(pool);
}

/**
 * The hot-path executor of the ORM itself, for long-lived services that run raw statements only (the
 * metering service): no EntityManager is held across calls. On PostgreSQL, the ORM's pg pool; on PGlite,
 * a fresh fork of the EntityManager per statement or transaction.
 */
export function sqlFor(orm: Orm): SqlRunner {
  // One runner per ORM: the GraphQL read path asks for it on every request.
  let runner = runners.get(orm);
  if (runner) return runner;
  const probe = orm.em.fork();
  runner =
    probe.getConnection() instanceof PostgreSqlConnection
      ? sqlOf(probe)
      : {
          query: (statement, values) => throughEm(orm.em.fork()).query(statement, values),
          transaction: (fn) => throughEm(orm.em.fork()).transaction(fn),
          inTwoRoundTrips: (steps) => throughEm(orm.em.fork()).inTwoRoundTrips(steps),
        };
  runners.set(orm, runner);
  return runner;
}

const runners = new WeakMap<Orm, SqlRunner>();

/**
 * A hot-path executor whose prepared statements always run on their generic plan (PostgreSQL's
 * `plan_cache_mode = force_generic_plan`), for statements whose arrays make the planner misjudge it: the
 * generic plan of a statement over `unnest($n::uuid[])` is costed for 10 rows per array, its custom plans
 * (the values known) for the 1 or few rows a call has, so after its five first runs PostgreSQL may keep
 * planning it afresh on every run, which for the settlement's statement cost more CPU than running it.
 * On PostgreSQL: a small pool of its own (`max` connections, default 2) with the ORM pool's settings; on
 * PGlite, `sqlFor(orm)`. Only for statements whose plan does not depend on their values (lookups by id, set
 * writes); `close` ends its pool (the ORM's close does not). Its connections also run with
 * `enable_seqscan = off`: a generic plan is made once, often on a fresh table (a new database, the first
 * calls after a deploy), and a plan that reads a small table whole stays the connection's plan as the
 * table grows; these statements find their rows by key, so an index is always the right way to them.
 */
export function sqlWithGenericPlans(orm: Orm, max = 2): { sql: SqlRunner; close(): Promise<void> } {
  const connection = orm.em.fork().getConnection();
  if (!(connection instanceof PostgreSqlConnection)) return { sql: sqlFor(orm), close: async () => {} };
  const pool = (connection.getNativeClient() as Promise<Pool>).then((base) => {
    const settings = base.options as pg.PoolConfig;
    const own = new pg.Pool({
      ...settings,
      max,
      options: `${settings.options ?? ''} -c plan_cache_mode=force_generic_plan -c enable_seqscan=off`.trim(),
    });
    // A connection that dies while idle (the server restarted) is dropped by the pool; the next statement
    // opens another. Without a listener, that 'error' would end the process.
    own.on('error', () => {});
    return own;
  });
  let closed: Promise<void> | undefined;
  return {
    sql: throughPool(pool),
    close: () => {
      closed ??= pool.then((own) => own.end());
      return closed;
    },
  };
}

/** `statement` with its values inlined as escaped literals (arrays as array literals), for a script. */
function inlined(statement: Statement, values: readonly unknown[]): string {
  return statement.text.replace(/\$(\d+)/g, (_, index: string) => {
    const value = values[Number(index) - 1];
    if (value === null || value === undefined) return 'NULL';
    return escapeLiteral(Array.isArray(value) ? arrayLiteral(value) : String(value));
  });
}

/** The rows of the last statement of a simple-protocol script (pg returns one result per statement). */
function rowsOf<Row>(result: QueryResult | QueryResult[], index: number): Row[] {
  const results = Array.isArray(result) ? result : [result];
  return (results[index]?.rows ?? []) as Row[];
}

function isStep<Second, T>(
  value: { statement: Statement; values: readonly unknown[]; done(rows: Second[]): T } | T,
): value is { statement: Statement; values: readonly unknown[]; done(rows: Second[]): T } {
  return typeof value === 'object' && value !== null && 'statement' in value && 'done' in value;
}

function throughPool(poolPromise: Promise<Pool>): SqlRunner {
  const on =
    (client: Pool | PoolClient): Query =>
    async <Row>(statement: Statement, values: readonly unknown[]) =>
      (await client.query({ name: statement.name, text: statement.text, values: [...values] })).rows as Row[];
  return {
    query: async (statement, values) => on(await poolPromise)(statement, values),
    async transaction(fn) {
      const client = await (await poolPromise).connect();
      let broken: Error | undefined;
      try {
        await client.query('begin');
        try {
          const result = await fn(on(client));
          await client.query('commit');
          return result;
        } catch (error) {
          await client.query('rollback').catch((rollbackError: Error) => {
            broken = rollbackError; // the connection is unusable: drop it from the pool
          });
          throw error;
        }
      } finally {
        client.release(broken);
      }
    },
    async inTwoRoundTrips(steps) {
      const client = await (await poolPromise).connect();
      let broken: Error | undefined;
      let open = false;
      try {
        open = true; // from here on a failure may have left a transaction open: always roll back
        const first = rowsOf(
          await client.query(`begin; ${inlined(steps.first.statement, steps.first.values)}`),
          1,
        );
        const next = steps.between(first as never);
        if (!isStep(next)) {
          await client.query('commit');
          open = false;
          return next;
        }
        const second = rowsOf(await client.query(`${inlined(next.statement, next.values)}; commit`), 0);
        open = false;
        return next.done(second as never);
      } catch (error) {
        if (open) {
          await client.query('rollback').catch((rollbackError: Error) => {
            broken = rollbackError;
          });
        }
        throw error;
      } finally {
        client.release(broken);
      }
    },
  };
}

function throughEm(em: Em): SqlRunner {
  const on =
    (tx: Em): Query =>
    <Row>(statement: Statement, values: readonly unknown[]) => {
      const ordered: unknown[] = [];
      const text = statement.text.replace(/\$(\d+)/g, (_, index: string) => {
        const value = values[Number(index) - 1];
        ordered.push(Array.isArray(value) ? arrayLiteral(value) : value);
        return '?';
      });
      return tx.execute(text, ordered) as Promise<Row[]>;
    };
  const transaction: SqlRunner['transaction'] = (fn) =>
    em.isInTransaction() ? fn(on(em)) : em.transactional((tx) => fn(on(tx as Em)));
  return {
    query: on(em),
    transaction,
    inTwoRoundTrips: (steps) =>
      transaction(async (query) => {
        const next = steps.between(await query(steps.first.statement, steps.first.values));
        if (!isStep(next)) return next;
        return next.done(await query(next.statement, next.values));
      }),
  };
}

/** A PostgreSQL array literal, e.g. `{"a","b",NULL}`: what `pg` sends for a JS array parameter. */
function arrayLiteral(values: readonly unknown[]): string {
  const items = values.map((value) =>
    value === null || value === undefined
      ? 'NULL'
      : `"${String(value).replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
  );
  return `{${items.join(',')}}`;
}
