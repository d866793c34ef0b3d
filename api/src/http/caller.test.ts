import { describe, expect, it } from 'vitest';
import type { AppServices } from '../context.ts';
import type { Em } from '../db/orm.ts';
import { RecentApiKeys } from '../modules/apikeys/apikeys.service.ts';
import { bearerToken, resolveCaller } from './caller.ts';

// These cases never reach the database: a lookup would fail loudly on this stand-in.
const unreachableEm = new Proxy({}, { get: () => () => Promise.reject(new Error('no database here')) }) as Em;
const services = {
  orm: { em: { fork: () => unreachableEm } },
  config: { auditorAddresses: [] },
  recentApiKeys: new RecentApiKeys(),
} as unknown as Pick<AppServices, 'orm' | 'config' | 'recentApiKeys'>;

describe('bearerToken', () => {
  it('takes the token of "Bearer x" or a bare token, nothing empty or oversized', () => {
    expect(bearerToken('Bearer cm_abc')).toBe('cm_abc');
    expect(bearerToken('bearer  cms_abc ')).toBe('cms_abc');
    expect(bearerToken('cm_abc')).toBe('cm_abc');
    expect(bearerToken('Bearer ')).toBeNull();
    expect(bearerToken(42)).toBeNull();
    expect(bearerToken(`cm_${'x'.repeat(600)}`)).toBeNull();
  });
});

describe('resolveCaller', () => {
  it('is null without a credential, or with a token that is neither a session nor an API key', async () => {
    expect(await resolveCaller(services, { authorization: [undefined, null] })).toBeNull();
    expect(await resolveCaller(services, { authorization: ['Bearer something-else'] })).toBeNull();
  });

  it('refuses the session cookie on a request a browser can send cross-site', async () => {
    const cookie = { value: 'cms_token', accepted: false };
    await expect(resolveCaller(services, { authorization: [], sessionCookie: cookie })).rejects.toMatchObject(
      {
        code: 'FORBIDDEN',
      },
    );
  });

  it('reads the cookie only when no Authorization token is present', async () => {
    const cookie = { value: 'cms_token', accepted: false };
    expect(await resolveCaller(services, { authorization: ['other'], sessionCookie: cookie })).toBeNull();
  });
});
