import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { Session } from '../auth/auth.entity.ts';
import { viewerFromSessionToken } from '../auth/auth.service.ts';
import {
  findOrCreateAccount,
  getAccount,
  getAccountByWallet,
  InvalidWalletAddressError,
} from './accounts.service.ts';

const { orm } = await testOrmForFile();

describe('accounts', () => {
  it('creates one checksummed account per wallet, whatever the case of the input', async () => {
    const wallet = privateKeyToAddress(generatePrivateKey());
    const created = await findOrCreateAccount(orm.em.fork(), wallet.toLowerCase());
    expect(created.walletAddress).toBe(wallet);
    expect(created.balance).toBe(0n);
    expect(created.held).toBe(0n);
    expect(created.ledgerSeq).toBe(0);
    const again = await findOrCreateAccount(orm.em.fork(), wallet.toUpperCase().replace('0X', '0x'));
    expect(again.id).toBe(created.id);
    expect((await getAccountByWallet(orm.em.fork(), wallet.toLowerCase()))?.id).toBe(created.id);
    expect((await getAccount(orm.em.fork(), created.id))?.walletAddress).toBe(wallet);
  });

  it('is race-safe: 20 concurrent calls for one new wallet yield one row', async () => {
    const wallet = privateKeyToAddress(generatePrivateKey());
    const results = await Promise.all(
      Array.from({ length: 20 }, () => orm.em.fork().transactional((tx) => findOrCreateAccount(tx, wallet))),
    );
    expect(new Set(results.map((a) => a.id)).size).toBe(1);
    const rows = await orm.em
      .fork()
      .execute('select count(*)::int as n from accounts where wallet_address = ?', [wallet]);
    expect(rows[0]?.n).toBe(1);
  });

  it('refuses what is not an address', async () => {
    await expect(findOrCreateAccount(orm.em.fork(), '0x1234')).rejects.toBeInstanceOf(
      InvalidWalletAddressError,
    );
    await expect(getAccountByWallet(orm.em.fork(), 'nope')).rejects.toBeInstanceOf(InvalidWalletAddressError);
  });
});

describe('the account of a session (readLiveSessionByToken)', () => {
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
