/**
 * Credits the treasury's transfers, read from the chain with the audit's own log scan, through the API's
 * crediting service, as the crediting worker would from the indexer's rows: for the audit's benchmark and
 * tests, which need a credited platform but never read the indexer, so no Ponder is started.
 */

import type { Em } from '@chainmeter/api/db/orm';
import { creditConfirmedTransfers } from '@chainmeter/api/modules/deposits/crediting.service';
import { type ChainTransfer, fetchTreasuryTransfers } from '@chainmeter/schema';
import type { Address, Hash, PublicClient } from 'viem';

export interface CreditTreasuryTransfersParameters {
  chainId: number;
  token: Address;
  treasury: Address;
  /** Transfers up to this block are read, and credited as confirmed at it. */
  head: bigint;
  /** Credit only these (default: all). */
  only?: (transfer: ChainTransfer) => boolean;
}

/** Returns every treasury transfer on chain up to `head`; credits those `only` keeps, 5,000 per transaction. */
export async function creditTreasuryTransfers(
  em: Em,
  client: PublicClient,
  params: CreditTreasuryTransfersParameters,
): Promise<ChainTransfer[]> {
  const { chainId, token, treasury, head } = params;
  const onChain = await fetchTreasuryTransfers(client, {
    chainId,
    token,
    treasury,
    fromBlock: 0n,
    toBlock: head,
  });
  const credited = params.only ? onChain.filter(params.only) : onChain;
  for (let i = 0; i < credited.length; i += 5_000) {
    const batch = credited.slice(i, i + 5_000).map((t) => ({
      ...t,
      txHash: t.txHash as Hash,
      blockHash: t.blockHash as Hash,
      from: t.from as Address,
      to: treasury,
      timestamp: 0n,
    }));
    await creditConfirmedTransfers(em.fork(), chainId, batch, head);
  }
  return onChain;
}
