/**
 * Solvency, public: what the treasury holds on chain against what the platform owes.
 *
 * - `treasuryBalance`: the token's `balanceOf(treasury)` at `asOfBlock`, the chain's newest block when read
 *   (through the API's RPC, never the indexer), in micro-USD (1 USDC base unit = 1 micro-USD).
 * - the ledger's figures (`readLedgerFigures`): outstanding credits (the sum of the balances, which
 *   includes what calls in flight hold), held credits, credited deposits, charged usage, operators'
 *   adjustments and the accounts' reorg debt, all from one SQL snapshot.
 *
 * Over time: the figures are recorded every `SOLVENCY_SNAPSHOT_MS` (one row per period, whatever the number
 * of replicas) and read back by `solvencyHistory`. A snapshot, not a derivation from the ledger, because the
 * treasury's balance is the chain's (the DAO may move funds out) and reading past balances needs an archive
 * node; the history therefore starts when the platform first ran with this version.
 *
 * Concurrent reads share one computation (the ledger sums scan the ledger): a public field cannot make the
 * API run more than one at a time per replica.
 */
import { tokenUnitsToMicroUsd, USDC_DECIMALS, usdcAbi } from '@chainmeter/schema';
import type { Address, PublicClient } from 'viem';
import type { Orm } from '../../db/orm.ts';
import { sqlFor } from '../../db/sql.ts';
import { badInput } from '../../errors.ts';
import {
  insertSolvencySnapshot,
  readLedgerFigures,
  readSolvencySnapshots,
  type SolvencyFigures,
} from './solvency.store.ts';

export interface SolvencyServiceOptions {
  orm: Orm;
  chain: PublicClient;
  tokenAddress: Address;
  treasuryAddress: Address;
  /** How often a snapshot is recorded (0: never). */
  snapshotMs: number;
  logger: { warn(object: object, message: string): void };
}

export interface SolvencyService {
  /** The figures now (treasury read from the chain at its newest block). */
  current(): Promise<SolvencyFigures>;
  /** Recorded snapshots taken in [from, to), oldest first: the newest `limit` of them. */
  history(range: { from: Date; to: Date }, limit?: number): Promise<SolvencyFigures[]>;
  /** Records the figures as the snapshot of the current period, unless it has one: true when written. */
  recordSnapshot(now?: Date): Promise<boolean>;
  /** Records a snapshot now and then every `snapshotMs` (nothing when 0); `stop` waits for a run in progress. */
  startSnapshots(): { stop(): Promise<void> };
}

export const SOLVENCY_HISTORY_MAX_POINTS = 2_000;

export function createSolvencyService(options: SolvencyServiceOptions): SolvencyService {
  const { orm, chain, tokenAddress, treasuryAddress, snapshotMs, logger } = options;
  const sql = sqlFor(orm);
  let inFlight: Promise<SolvencyFigures> | null = null;

  async function compute(): Promise<SolvencyFigures> {
    // Never viem's cached block number (up to 4 s old): an older block can predate payments already credited.
    const asOfBlock = await chain.getBlockNumber({ cacheTime: 0 });
    const units = await chain.readContract({
      address: tokenAddress,
      abi: usdcAbi,
      functionName: 'balanceOf',
      args: [treasuryAddress],
      blockNumber: asOfBlock,
    });
    const ledger = await readLedgerFigures(sql.query);
    return {
      ...ledger,
      treasuryBalance: tokenUnitsToMicroUsd(units, USDC_DECIMALS),
      asOfBlock,
      takenAt: new Date(),
    };
  }

  const service: SolvencyService = {
    current() {
      inFlight ??= compute().finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
    async history(range, limit = SOLVENCY_HISTORY_MAX_POINTS) {
      if (!(range.from.getTime() < range.to.getTime())) throw badInput('`from` must be before `to`', 'from');
      return readSolvencySnapshots(
        sql.query,
        range,
        Math.min(Math.max(limit, 1), SOLVENCY_HISTORY_MAX_POINTS),
      );
    },
    async recordSnapshot(now = new Date()) {
      const figures = await compute();
      const period = BigInt(Math.floor(now.getTime() / Math.max(snapshotMs, 1_000)));
      return insertSolvencySnapshot(sql.query, period, figures);
    },
    startSnapshots() {
      if (snapshotMs <= 0) return { stop: async () => {} };
      let timer: NodeJS.Timeout | undefined;
      let running: Promise<unknown> | null = null;
      let stopped = false;
      const tick = () => {
        if (stopped) return;
        running = service
          .recordSnapshot()
          .catch((error: unknown) =>
            logger.warn({ err: error }, 'solvency snapshot not recorded; the next period will try again'),
          )
          .finally(() => {
            running = null;
            if (!stopped) timer = setTimeout(tick, snapshotMs);
          });
      };
      tick();
      return {
        async stop() {
          stopped = true;
          clearTimeout(timer);
          await running;
        },
      };
    },
  };
  return service;
}
