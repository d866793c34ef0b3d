import { describe, expect, it } from 'vitest';
import { isCreditableTransfer } from './crediting-rules.ts';

const WALLET = '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720';
const TREASURY = '0x14dC79964da2C08b23698B3D3cc7Ca32193d9955';

describe('isCreditableTransfer', () => {
  it('credits a positive payment from a wallet', () => {
    expect(isCreditableTransfer({ from: WALLET, to: TREASURY, value: 1n })).toBe(true);
  });

  it('credits neither zero-value transfers nor mints', () => {
    expect(isCreditableTransfer({ from: WALLET, to: TREASURY, value: 0n })).toBe(false);
    expect(
      isCreditableTransfer({ from: '0x0000000000000000000000000000000000000000', to: TREASURY, value: 5n }),
    ).toBe(false);
  });

  it('does not credit the treasury paying itself, whatever the case of the addresses', () => {
    expect(isCreditableTransfer({ from: TREASURY, to: TREASURY.toLowerCase(), value: 5n })).toBe(false);
  });
});
