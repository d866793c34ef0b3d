import { describe, expect, it } from 'vitest';
import { isCreditableTransfer } from './crediting-rules.ts';

describe('isCreditableTransfer', () => {
  it('credits a positive payment from a wallet', () => {
    expect(isCreditableTransfer({ from: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720', value: 1n })).toBe(
      true,
    );
  });

  it('credits neither zero-value transfers nor mints', () => {
    expect(isCreditableTransfer({ from: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720', value: 0n })).toBe(
      false,
    );
    expect(isCreditableTransfer({ from: '0x0000000000000000000000000000000000000000', value: 5n })).toBe(
      false,
    );
  });
});
