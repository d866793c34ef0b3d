import { describe, expect, it } from 'vitest';
import { chooseRpcUrl, type RpcOverrideStore } from './config.ts';

/** localStorage's contract over a Map, so the test sees what is remembered and what is forgotten. */
function memoryStore(
  initial: Record<string, string> = {},
): RpcOverrideStore & { entries: Map<string, string> } {
  const entries = new Map(Object.entries(initial));
  return {
    entries,
    getItem: (key) => entries.get(key) ?? null,
    setItem: (key, value) => void entries.set(key, value),
    removeItem: (key) => void entries.delete(key),
  };
}

const HOSTILE = 'https://rpc.attacker.example';

describe('the RPC the web client reads the chain through', () => {
  it('on Base ignores ?rpc= and keeps the public Base RPC, saying why', () => {
    const store = memoryStore();
    const choice = chooseRpcUrl(8453, `?rpc=${encodeURIComponent(HOSTILE)}`, store);
    expect(choice.url).toBe('https://mainnet.base.org');
    expect(choice.refusal).toContain(HOSTILE);
    expect(choice.refusal).toContain('only the local devnet (chain 31337)');
    expect([...store.entries]).toEqual([]);
  });

  it('on Base Sepolia and on a chain it does not know, ignores ?rpc= too', () => {
    expect(chooseRpcUrl(84532, `?rpc=${HOSTILE}`, memoryStore()).url).toBe('https://sepolia.base.org');
    expect(chooseRpcUrl(10, `?rpc=${HOSTILE}`, memoryStore()).url).toBe('http://127.0.0.1:8545');
  });

  it('on Base forgets an override a phishing link left in storage before this rule', () => {
    const store = memoryStore({ 'chainmeter.rpcUrl.8453': HOSTILE });
    const choice = chooseRpcUrl(8453, '', store);
    expect(choice.url).toBe('https://mainnet.base.org');
    expect(choice.refusal).toContain(HOSTILE);
    expect(store.entries.has('chainmeter.rpcUrl.8453')).toBe(false);
    // Next visit: nothing left to refuse.
    expect(chooseRpcUrl(8453, '', store)).toEqual({ url: 'https://mainnet.base.org', refusal: null });
  });

  it('on the devnet honours ?rpc= and remembers it for the next visit', () => {
    const store = memoryStore();
    const anvil = 'http://127.0.0.1:53117';
    expect(chooseRpcUrl(31337, `?rpc=${encodeURIComponent(anvil)}`, store)).toEqual({
      url: anvil,
      refusal: null,
    });
    expect(chooseRpcUrl(31337, '', store)).toEqual({ url: anvil, refusal: null });
  });

  it('on the devnet refuses a ?rpc= that is not an http(s) URL', () => {
    const choice = chooseRpcUrl(31337, '?rpc=javascript:alert(1)', memoryStore());
    expect(choice.url).toBe('http://127.0.0.1:8545');
    expect(choice.refusal).toMatch(/not an http\(s\) URL/);
  });

  it('without any override reads the chain default, silently', () => {
    expect(chooseRpcUrl(31337, '', memoryStore())).toEqual({ url: 'http://127.0.0.1:8545', refusal: null });
    expect(chooseRpcUrl(8453, '', undefined)).toEqual({ url: 'https://mainnet.base.org', refusal: null });
  });
});
