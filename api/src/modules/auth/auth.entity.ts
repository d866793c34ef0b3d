import { randomUUID } from 'node:crypto';
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import { Account } from '../accounts/accounts.entity.ts';

/**
 * A sign-in challenge. Single use: `usedAt` is set by one guarded update, only after the signature that
 * answers it has verified, so nobody can burn another wallet's nonce by guessing.
 */
export const SiweNonce = defineEntity({
  name: 'SiweNonce',
  tableName: 'siwe_nonces',
  properties: {
    nonce: p.string().columnType('text').primary(),
    /** EIP-55 checksummed. */
    address: p.string().columnType('text'),
    chainId: p.integer(),
    issuedAt: p.datetime(),
    expiresAt: p.datetime().index(),
    usedAt: p.datetime().nullable(),
  },
});

/** A signed-in session. Only the SHA-256 of its bearer token is stored. */
export const Session = defineEntity({
  name: 'Session',
  tableName: 'sessions',
  properties: {
    id: p
      .uuid()
      .primary()
      .onCreate(() => randomUUID()),
    tokenHash: p.string().columnType('text').unique(),
    account: () => p.manyToOne(Account),
    createdAt: p.datetime().onCreate(() => new Date()),
    expiresAt: p.datetime(),
    revokedAt: p.datetime().nullable(),
  },
});

export type ISiweNonce = InferEntity<typeof SiweNonce>;
export type ISession = InferEntity<typeof Session>;
