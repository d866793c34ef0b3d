import { describe, expect, it } from 'vitest';
import { TEST_DRIVERS, testOrmForFile } from '../../test/support/database.ts';
import { type Statement, sqlFor, sqlOf, sqlWithGenericPlans } from './sql.ts';

const ECHO: Statement = {
  name: 'cm_test_echo',
  text: `select $1::text as text, $2::int as n, $3::text[] as list, $4::uuid[] as ids`,
};
const INSERT: Statement = {
  name: 'cm_test_insert',
  text: `insert into hot_sql_test (label) select unnest($1::text[]) returning label`,
};
const COUNT: Statement = { name: 'cm_test_count', text: 'select count(*)::int as n from hot_sql_test' };
const tricky = [`it's`, 'back\\slash', '"quoted"', 'comma,brace}{', null];

// PGlite on a data directory, as the API runs it; PGlite in memory is orm.test.ts's.
describe.each(TEST_DRIVERS)('sqlOf on %s', async (driver) => {
  const { orm } = await testOrmForFile(driver);
  await orm.em.fork().execute('create table hot_sql_test (label text)');

  const count = async () => (await sqlOf(orm.em.fork()).query<{ n: number }>(COUNT, []))[0]?.n;

  it('binds values and arrays exactly', async () => {
    const id = '6f1c1d3e-8a1b-4c5d-9e0f-112233445566';
    const [row] = await sqlOf(orm.em.fork()).query<{
      text: string;
      n: number;
      list: string[];
      ids: string[];
    }>(ECHO, [`a 'b' \\c`, 42, tricky, [id]]);
    expect(row).toEqual({ text: `a 'b' \\c`, n: 42, list: tricky, ids: [id] });
  });

  it('two steps commit together, with the rows of the first feeding the second', async () => {
    const before = await count();
    const written = await sqlOf(orm.em.fork()).inTwoRoundTrips<{ text: string }, { label: string }, string[]>(
      {
        first: { statement: ECHO, values: ['from the first step', 1, [], []] },
        between: (rows) => ({
          statement: INSERT,
          values: [[rows[0]?.text, ...tricky.filter((t) => t !== null)]],
          done: (inserted) => inserted.map((r) => r.label),
        }),
      },
    );
    expect(written).toEqual(['from the first step', `it's`, 'back\\slash', '"quoted"', 'comma,brace}{']);
    expect(await count()).toBe((before ?? 0) + 5);
  });

  it('a failure between or in the second step writes nothing', async () => {
    const before = await count();
    const failing = (values: unknown[]) =>
      sqlOf(orm.em.fork()).inTwoRoundTrips<{ label: string }, { label: string }, void>({
        first: { statement: INSERT, values: [['written first']] },
        between: () => ({ statement: ECHO, values, done: () => {} }),
      });
    await expect(failing(['x', 'not a number', [], []])).rejects.toThrow();
    await expect(
      sqlOf(orm.em.fork()).inTwoRoundTrips({
        first: { statement: INSERT, values: [['written first']] },
        between: () => {
          throw new RangeError('refused between the steps');
        },
      }),
    ).rejects.toThrow('refused between the steps');
    expect(await count()).toBe(before);
    // The connection went back to the pool clean: the next statement works.
    expect(await count()).toBe(before);
  });
  it("sqlFor(orm) does the same on the ORM's own connections, for services that hold no EntityManager", async () => {
    const sql = sqlFor(orm);
    const before = await count();
    const [row] = await sql.query<{ text: string; list: string[] }>(ECHO, ['for', 1, tricky, []]);
    expect(row).toMatchObject({ text: 'for', list: tricky });
    const written = await sql.inTwoRoundTrips<{ text: string }, { label: string }, number>({
      first: { statement: ECHO, values: ['two steps', 1, [], []] },
      between: (rows) => ({
        statement: INSERT,
        values: [[rows[0]?.text]],
        done: (inserted) => inserted.length,
      }),
    });
    expect(written).toBe(1);
    expect(await count()).toBe((before ?? 0) + 1);
  });

  it('sqlWithGenericPlans runs the same statements, each on its generic plan (PostgreSQL) from its first run, never a sequential scan', async () => {
    const { sql, close: closeRunner } = sqlWithGenericPlans(orm, 1);
    try {
      const [row] = await sql.query<{ text: string; list: string[] }>(ECHO, ['generic', 1, tricky, []]);
      expect(row).toMatchObject({ text: 'generic', list: tricky });
      if (driver !== 'PostgreSQL') return; // PGlite: the ORM's one session, whatever PostgreSQL would plan
      const id = '6f1c1d3e-8a1b-4c5d-9e0f-112233445566';
      for (let run = 0; run < 3; run++) await sql.query(ECHO, ['again', run, [], [id]]);
      const plans = (runner: typeof sql) =>
        runner.query<{ generic: number; custom: number }>(PLANS, [ECHO.name]).then((rows) => rows[0]);
      // One connection: every run above went to it, and so does this read of its prepared statements.
      // PostgreSQL's default would have planned the first five runs for their values (custom: 4).
      expect(await plans(sql)).toEqual({ generic: 4, custom: 0 });
      // Plans made on small tables must not read them whole once they have grown.
      expect(await sql.query(SEQSCAN, [])).toEqual([{ enable_seqscan: 'off' }]);
    } finally {
      await closeRunner();
    }
  });
});

const SEQSCAN: Statement = {
  name: 'cm_test_seqscan',
  text: `select current_setting('enable_seqscan') as enable_seqscan`,
};

const PLANS: Statement = {
  name: 'cm_test_plans',
  text: `select generic_plans::int as generic, custom_plans::int as custom from pg_prepared_statements
   where name = $1`,
};
