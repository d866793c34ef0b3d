import type { transfer } from 'ponder:schema';
import { getAddress } from 'viem';

type TransferRow = typeof transfer.$inferSelect;

/** The wire shape the API consumes: bigints as decimal strings, addresses checksummed. */
export type TransferJson = {
  chainId: number;
  txHash: `0x${string}`;
  logIndex: number;
  blockNumber: string;
  blockHash: `0x${string}`;
  from: `0x${string}`;
  to: `0x${string}`;
  value: string;
  timestamp: string;
};

export function transferToJson(row: TransferRow): TransferJson {
  return {
    chainId: row.chainId,
    txHash: row.txHash,
    logIndex: row.logIndex,
    blockNumber: row.blockNumber.toString(),
    blockHash: row.blockHash,
    from: getAddress(row.from),
    to: getAddress(row.to),
    value: row.value.toString(),
    timestamp: row.timestamp.toString(),
  };
}
