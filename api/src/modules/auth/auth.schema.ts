import { viewerOf } from '../../context.ts';
import { builder } from '../../schema/builder.ts';
import { AccountRef } from '../accounts/accounts.schema.ts';
import { createSiweChallenge, type SignInResult, signInWithEthereum, signOut } from './auth.service.ts';

const SessionRef = builder.objectRef<SignInResult>('Session').implement({
  description: 'A signed-in session. Send the token as `Authorization: Bearer <token>`.',
  fields: (t) => ({
    token: t.exposeString('token'),
    expiresAt: t.expose('expiresAt', { type: 'DateTime' }),
    account: t.field({ type: AccountRef, resolve: (session) => session.account }),
  }),
});

builder.mutationFields((t) => ({
  siweChallenge: t.string({
    description: 'The full EIP-4361 message for this wallet to sign, with a fresh single-use nonce.',
    args: {
      address: t.arg({ type: 'Address', required: true }),
      chainId: t.arg.int({ required: true }),
    },
    resolve: async (_root, args, ctx) => {
      await ctx.services.rateLimits.consumeIp(ctx.clientIp, 'siweChallenge');
      return createSiweChallenge(ctx.em, ctx.services.config, args);
    },
  }),
  signIn: t.field({
    type: SessionRef,
    description: 'Exchanges a signed siweChallenge message for a session (also set as an httpOnly cookie).',
    args: {
      message: t.arg.string({ required: true }),
      signature: t.arg.string({ required: true }),
    },
    resolve: async (_root, args, ctx) => {
      await ctx.services.rateLimits.consumeIp(ctx.clientIp, 'signIn');
      const session = await signInWithEthereum(ctx.em, ctx.services.config, ctx.services.chain, args);
      await ctx.sessionCookie?.set(session.token, session.expiresAt);
      return session;
    },
  }),
  signOut: t.boolean({
    description: 'Revokes the current session on every replica.',
    authScopes: { authenticated: true },
    resolve: async (_root, _args, ctx) => {
      const revoked = await signOut(ctx.em, viewerOf(ctx));
      await ctx.sessionCookie?.clear();
      return revoked;
    },
  }),
}));
