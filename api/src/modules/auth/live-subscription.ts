/**
 * Subscriptions last only as long as the credential they were opened with. Authorization is checked when
 * a subscription starts; without this, a socket opened before a sign-out (or before a key's revocation
 * or expiry) would go on receiving the account's events. Each event first checks the credential (one
 * small indexed query; events are rare), so on every replica the first event after the credential ends
 * is replaced by one UNAUTHENTICATED error, and the subscription ends there.
 */
import type { GraphQLContext } from '../../context.ts';
import { unauthenticated } from '../../errors.ts';
import { credentialIsLive } from './auth.service.ts';

/** Stands for "the credential has ended" in a subscription's event stream. */
export const CREDENTIAL_ENDED = Symbol('credential ended');

/** `source`'s events while the context's credential is live; then CREDENTIAL_ENDED, and the end. */
export async function* whileCredentialLive<T>(
  ctx: GraphQLContext,
  source: AsyncIterable<T>,
): AsyncGenerator<T | typeof CREDENTIAL_ENDED> {
  const viewer = ctx.viewer;
  if (!viewer) return;
  for await (const event of source) {
    if (!(await credentialIsLive(ctx.services.orm.em.fork(), viewer))) {
      yield CREDENTIAL_ENDED;
      return; // leaving the loop unsubscribes from `source`
    }
    yield event;
  }
}

/** For a subscription's `resolve`: the error its subscriber gets when the credential has ended. */
export function assertCredentialLive<T>(payload: T | typeof CREDENTIAL_ENDED): asserts payload is T {
  if (payload === CREDENTIAL_ENDED) {
    throw unauthenticated(
      'This subscription ended: its session was signed out or expired, or its API key revoked',
    );
  }
}
