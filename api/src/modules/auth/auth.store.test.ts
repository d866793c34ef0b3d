import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestOrm } from '../../../test/support/database.ts';
import type { Orm } from '../../db/orm.ts';
import { findOrCreateAccount, getAccount } from '../accounts/accounts.service.ts';
import { Session } from './auth.entity.ts';
import { viewerFromSessionToken } from './auth.service.ts';

let db: Awaited<ReturnType<typeof createTestOrm>>;
let orm: Orm;

beforeAll(async () => {
  db = await createTestOrm();
  orm = db.orm;
});
afterAll(() => db.close());

describe('readLiveSessionByToken', () => {
  it("reads the session's whole account with it: `me` then reads nothing more", async () => {
    const account = await findOrCreateAccount(orm.em.fork(), privateKeyToAddress(generatePrivateKey()));
    const token = `cms_${randomBytes(32).toString('base64url')}`;
    const em = orm.em.fork();
    em.create(Session, {
      tokenHash: createHash('sha256').update(token).digest('hex'),
      account: account.id,
      createdAt: new Date(),
      expiresAt: new Date(Date.now() + 60_000),
      revokedAt: null,
    });
    await em.flush();

    // Every statement outside a transaction, raw (`pool.query`) or through the ORM, checks a connection out.
    const pool = (await orm.em.getConnection().getNativeClient()) as Pool;
    let statements = 0;
    const count = () => {
      statements++;
    };
    pool.on('acquire', count);
    try {
      const request = orm.em.fork();
      const viewer = await viewerFromSessionToken(
        request,
        { auditorAddresses: [], operatorAddresses: [] },
        token,
      );
      expect(viewer?.accountId).toBe(account.id);
      expect(statements).toBe(1);
      const me = await getAccount(request, account.id);
      expect(me).toMatchObject({
        id: account.id,
        balance: 0n,
        lowBalanceThreshold: null,
        lowBalanceBelow: false,
      });
      expect(statements).toBe(1);
    } finally {
      pool.off('acquire', count);
    }
  });
});
