import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrm, migrateUp, type Orm, preparePgliteTemplate } from './orm.ts';
import { seedFromPgliteTemplate } from './pglite-template.ts';

/** The cluster's identity, which initdb draws at random: pg_control starts with it (little-endian uint64). */
function systemIdentifierOnDisk(dataDir: string): string {
  return readFileSync(path.join(dataDir, 'global', 'pg_control'))
    .readBigUInt64LE(0)
    .toString();
}

/** How many accounts `orm`'s database holds (the query fails where the API's tables are missing). */
async function accountCount(orm: Orm): Promise<string | undefined> {
  const [row] = await orm.em.fork().execute<{ n: string }[]>('select count(*)::text as n from accounts');
  return row?.n;
}

let template: string;
const work = mkdtempSync(path.join(tmpdir(), 'cm-pglite-template-'));

beforeAll(async () => {
  template = await preparePgliteTemplate();
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the PGlite template cluster', () => {
  it('is made once, in node_modules/.cache, as a whole cluster', async () => {
    expect(template).toContain(`${path.sep}node_modules${path.sep}.cache${path.sep}`);
    expect(existsSync(path.join(template, 'PG_VERSION'))).toBe(true);
    // Asked again, it is the same cluster, not a new initdb.
    const before = systemIdentifierOnDisk(template);
    expect(await preparePgliteTemplate()).toBe(template);
    expect(systemIdentifierOnDisk(template)).toBe(before);
  });

  it('seeds an API that opens an empty data directory, which then migrates and serves', async () => {
    const dataDir = path.join(work, 'fresh', 'api');
    const orm = await createOrm({ pgliteDataDir: dataDir });
    try {
      // The running cluster is the template's copy: the same identity, not one initdb drew anew.
      const [control] = await orm.em
        .fork()
        .execute<{ id: string }[]>('select system_identifier::text as id from pg_control_system()');
      expect(control?.id).toBe(systemIdentifierOnDisk(template));
      await migrateUp(orm);
      expect(await accountCount(orm)).toBe('0');
    } finally {
      await orm.close(true);
    }
    // The copy was renamed into place: nothing half-made is left beside it.
    expect(existsSync(path.join(work, 'fresh', `api.seeding-${process.pid}`))).toBe(false);
    const reopened = await createOrm({ pgliteDataDir: dataDir });
    try {
      // Reopened, the cluster keeps its data: seeding never runs over an existing cluster.
      expect(await accountCount(reopened)).toBe('0');
    } finally {
      await reopened.close(true);
    }
  }, 120_000);

  it('removes the copies a process that died mid-copy left, and keeps a live one', () => {
    const parent = path.join(work, 'crashed');
    const dataDir = path.join(parent, 'api');
    // No process has this id (above Linux's largest pid_max); pid 1 is alive.
    const abandoned = path.join(parent, 'api.seeding-2147483646');
    const live = path.join(parent, 'api.seeding-1');
    const other = path.join(parent, 'ponder.seeding-2147483646');
    for (const dir of [abandoned, live, other]) mkdirSync(dir, { recursive: true });
    expect(seedFromPgliteTemplate(dataDir)).toBe(true);
    expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
    expect(existsSync(abandoned)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(other)).toBe(true); // another directory's, left to its own seeding
  });

  it('leaves a directory that holds anything else alone', () => {
    const dataDir = path.join(work, 'occupied');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(path.join(dataDir, 'notes.txt'), 'mine');
    expect(seedFromPgliteTemplate(dataDir)).toBe(false);
    expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(false);
    expect(readFileSync(path.join(dataDir, 'notes.txt'), 'utf8')).toBe('mine');
  });
});
