import { devAccounts } from '@chainmeter/testkit/accounts';
import { describe, expect, it } from 'vitest';
import { devPayers } from './dev-wallet.ts';

describe('dev wallet', () => {
  it('offers exactly the devnet payers (anvil accounts 1-8), never the deployer or the treasury', () => {
    expect(devPayers).toEqual(
      devAccounts.payers.map((account) => ({ index: account.index, address: account.address })),
    );
  });
});
