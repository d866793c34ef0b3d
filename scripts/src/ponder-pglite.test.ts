import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pgliteTemplateDir } from '@chainmeter/api/db/pglite-template';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ponderPackageJson,
  ponderPgliteTemplateDir,
  preparePonderPgliteTemplate,
  seedPonderPgliteDir,
} from './ponder-pglite.ts';

interface Pglite {
  query<T>(sql: string): Promise<{ rows: T[] }>;
  exec(sql: string): Promise<unknown>;
  close(): Promise<void>;
}

/** Ponder's own PGlite, opened the way Ponder opens its directory (`new PGlite({ dataDir })`). */
async function openAsPonder(dataDir: string): Promise<Pglite> {
  const entry = createRequire(ponderPackageJson()).resolve('@electric-sql/pglite');
  const { PGlite } = (await import(entry)) as { PGlite: new (options: { dataDir: string }) => Pglite };
  return new PGlite({ dataDir });
}

/** The cluster's identity, which initdb draws at random: pg_control starts with it (little-endian uint64). */
function systemIdentifierOnDisk(dataDir: string): string {
  return readFileSync(path.join(dataDir, 'global', 'pg_control'))
    .readBigUInt64LE(0)
    .toString();
}

const version = (from: string): string =>
  (JSON.parse(readFileSync(from, 'utf8')) as { dependencies: Record<string, string> }).dependencies[
    '@electric-sql/pglite'
  ] as string;

let template: string;
const work = mkdtempSync(path.join(tmpdir(), 'cm-ponder-pglite-'));

beforeAll(async () => {
  template = await preparePonderPgliteTemplate();
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the template of Ponder's PGlite", () => {
  it("is made once by Ponder's PGlite version, apart from the API's template", async () => {
    expect(template).toBe(ponderPgliteTemplateDir());
    expect(existsSync(path.join(template, 'PG_VERSION'))).toBe(true);
    // Named by the version Ponder declares (it pins one exactly), not the API's.
    expect(path.basename(template)).toBe(`pglite-template-${version(ponderPackageJson())}`);
    expect(template).not.toBe(pgliteTemplateDir());
    const before = systemIdentifierOnDisk(template);
    expect(await preparePonderPgliteTemplate()).toBe(template);
    expect(systemIdentifierOnDisk(template)).toBe(before);
  });

  it('seeds an empty Ponder directory that opens as that cluster, takes writes and keeps them', async () => {
    const dataDir = path.join(work, 'run', 'ponder');
    expect(seedPonderPgliteDir(dataDir)).toBe(true);
    expect(existsSync(path.join(work, 'run', `ponder.seeding-${process.pid}`))).toBe(false);
    const db = await openAsPonder(dataDir);
    try {
      const { rows } = await db.query<{ id: string }>(
        'select system_identifier::text as id from pg_control_system()',
      );
      expect(rows[0]?.id).toBe(systemIdentifierOnDisk(template));
      await db.exec(
        'create schema chainmeter; create table chainmeter.t (n int); insert into chainmeter.t values (7)',
      );
    } finally {
      await db.close();
    }
    // Seeding again never runs over the cluster: the row is still there.
    expect(seedPonderPgliteDir(dataDir)).toBe(false);
    const reopened = await openAsPonder(dataDir);
    try {
      const { rows } = await reopened.query<{ n: number }>('select n from chainmeter.t');
      expect(rows).toEqual([{ n: 7 }]);
    } finally {
      await reopened.close();
    }
  }, 120_000);

  it('leaves a directory that holds anything else alone', () => {
    const dataDir = path.join(work, 'occupied');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(path.join(dataDir, 'notes.txt'), 'mine');
    expect(seedPonderPgliteDir(dataDir)).toBe(false);
    expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(false);
    expect(readFileSync(path.join(dataDir, 'notes.txt'), 'utf8')).toBe('mine');
  });
});
