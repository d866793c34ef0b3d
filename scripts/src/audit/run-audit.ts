/**
 * The audit command: options -> chain (RPC) + platform records (API or database) -> `checkAudit` ->
 * report on stdout, progress on stderr, exit code 0 (consistent), 1 (discrepancies) or 2 (could not run).
 */
import { readFile } from 'node:fs/promises';
import {
  AuditFormatError,
  type AuditReport,
  accountProofFromJson,
  auditReportToJson,
  BASE_CHAIN_ID,
  BASE_USDC_ADDRESS,
  checkAudit,
  defaultConfirmations,
  fetchTreasuryTransfers,
  formatAuditMarkdown,
  readTreasuryBalance,
  type ScanProgress,
  TransferScanError,
} from '@chainmeter/schema';
import { type Address, createPublicClient, getAddress, http, type PublicClient } from 'viem';
import type { AuditEnv } from '../env.ts';
import { AUDIT_USAGE, type AuditOptions, parseAuditOptions, UsageError } from './audit-options.ts';
import {
  AuditRunError,
  fetchPaymentConfig,
  type PaymentConfig,
  readRecordsFromApi,
  readRecordsFromDatabase,
} from './platform-records.ts';

export interface AuditIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const EXIT_CONSISTENT = 0;
const EXIT_DISCREPANCIES = 1;
const EXIT_COULD_NOT_RUN = 2;

/**
 * `environment` gives the platform's variables (`auditEnvironment` for the real command); without it only the
 * options count.
 */
export async function runAuditCommand(
  argv: readonly string[],
  io: AuditIo,
  environment?: (envFile: string | undefined) => AuditEnv,
): Promise<number> {
  let options: AuditOptions;
  try {
    options = parseAuditOptions(argv, environment);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`audit: ${error.message}\n\n${AUDIT_USAGE}`);
    return EXIT_COULD_NOT_RUN;
  }
  if (options.help) {
    io.stdout(AUDIT_USAGE);
    return EXIT_CONSISTENT;
  }
  try {
    const report = options.proofFile ? await verifyProofFile(options, io) : await auditPlatform(options, io);
    io.stdout(
      options.format === 'json'
        ? `${JSON.stringify(auditReportToJson(report), null, 2)}\n`
        : formatAuditMarkdown(report),
    );
    return report.consistent ? EXIT_CONSISTENT : EXIT_DISCREPANCIES;
  } catch (error) {
    if (
      error instanceof AuditRunError ||
      error instanceof UsageError ||
      error instanceof AuditFormatError ||
      error instanceof TransferScanError
    ) {
      io.stderr(`audit: could not run: ${error.message}\n`);
      return EXIT_COULD_NOT_RUN;
    }
    io.stderr(`audit: could not run: unexpected ${(error as Error).name}: ${(error as Error).message}\n`);
    return EXIT_COULD_NOT_RUN;
  }
}

function progress(options: AuditOptions, io: AuditIo) {
  let last = 0;
  return {
    note(message: string, force = false) {
      if (options.quiet) return;
      const now = Date.now();
      if (!force && now - last < 1_000) return;
      last = now;
      io.stderr(`audit: ${message}\n`);
    },
    scan(p: ScanProgress) {
      const total = p.toBlock - p.fromBlock + 1n;
      const done = p.scannedTo - p.fromBlock + 1n;
      const percent = total > 0n ? Number((done * 100n) / total) : 100;
      this.note(
        `scanned blocks ${p.fromBlock}..${p.scannedTo} of ..${p.toBlock} (${percent}%), ${p.transfers} transfers`,
        p.scannedTo === p.toBlock,
      );
    },
  };
}

/** `client` for single calls (retried by the transport); `scan` for log scans, which retry themselves. */
async function connectRpc(
  rpcUrl: string,
): Promise<{ client: PublicClient; scan: PublicClient; chainId: number }> {
  // cacheTime 0: each head read is the chain's head now, not viem's cached one (up to 4 s old).
  const client = createPublicClient({
    transport: http(rpcUrl, { timeout: 30_000, retryCount: 2 }),
    cacheTime: 0,
  });
  const scan = createPublicClient({ transport: http(rpcUrl, { timeout: 60_000, retryCount: 0 }) });
  try {
    return { client, scan, chainId: await client.getChainId() };
  } catch (error) {
    throw new AuditRunError(`cannot reach the RPC at ${rpcUrl}: ${(error as Error).message.split('\n')[0]}`);
  }
}

/**
 * token, treasury, confirmations: the options first, then the platform's environment (both in `options`; on
 * Base the token defaults to Circle's USDC as on the platform), and only what is still unknown from the
 * API's public paymentConfig. With both addresses known no API is asked: confirmations default as on the
 * platform.
 */
async function platformConfig(options: AuditOptions, chainId: number): Promise<PaymentConfig> {
  if (options.chainId !== undefined && options.chainId !== chainId) {
    throw new AuditRunError(`the RPC serves chain ${chainId}, but CHAIN_ID is ${options.chainId}`);
  }
  const token = options.token ?? (chainId === BASE_CHAIN_ID ? getAddress(BASE_USDC_ADDRESS) : undefined);
  if (token && options.treasury) {
    return {
      chainId,
      tokenAddress: token,
      treasuryAddress: options.treasury,
      confirmations: options.confirmations ?? defaultConfirmations(chainId),
    };
  }
  let config: PaymentConfig;
  try {
    config = await fetchPaymentConfig(options.apiOrigin);
  } catch (error) {
    if (options.databaseUrl && error instanceof AuditRunError) {
      throw new AuditRunError(
        `${error.message}; with --database and no reachable API, set USDC_ADDRESS and TREASURY_ADDRESS (and CONFIRMATIONS) as for the platform, in the environment or .env, or give --token and --treasury (and --confirmations)`,
      );
    }
    throw error;
  }
  if (config.chainId !== chainId) {
    throw new AuditRunError(
      `the RPC serves chain ${chainId}, but the platform is on chain ${config.chainId}`,
    );
  }
  return {
    chainId,
    tokenAddress: token ?? config.tokenAddress,
    treasuryAddress: options.treasury ?? config.treasuryAddress,
    confirmations: options.confirmations ?? config.confirmations,
  };
}

async function auditPlatform(options: AuditOptions, io: AuditIo): Promise<AuditReport> {
  if (!options.databaseUrl && !options.key) {
    throw new AuditRunError(
      `no auditor API key. Reading the records of ${options.apiOrigin} needs --key cm_... : sign in with a wallet listed in the API's AUDITOR_ADDRESSES, create a key with the auditor scope (mutation createApiKey(input: { name: "audit", scope: AUDITOR })), and pass it. Operators may read the database instead with --database <url>.`,
    );
  }
  const log = progress(options, io);
  const { client, scan, chainId } = await connectRpc(options.rpcUrl);
  const config = await platformConfig(options, chainId);
  // The head first, then the records, then the logs up to that head: see `AuditScope.head`.
  const head = await client.getBlockNumber();
  log.note(`chain ${chainId} at block ${head}; reading the platform's records`, true);
  const records = options.databaseUrl
    ? await readRecordsFromDatabase(options.databaseUrl)
    : await readRecordsFromApi(options.apiOrigin, options.key as string, (m) => log.note(m));
  log.note(`${records.accounts.length} accounts, ${records.entries.length} ledger entries`, true);
  const transfers =
    options.fromBlock > head
      ? []
      : await fetchTreasuryTransfers(scan, {
          chainId,
          token: getAddress(config.tokenAddress),
          treasury: getAddress(config.treasuryAddress),
          fromBlock: options.fromBlock,
          toBlock: head,
          blockRange: options.blockRange,
          onProgress: (p) => log.scan(p),
        });
  const treasuryBalance = await readTreasuryBalance(client, {
    token: getAddress(config.tokenAddress),
    treasury: getAddress(config.treasuryAddress),
    blockNumber: head,
  });
  return checkAudit({
    chainId,
    tokenAddress: getAddress(config.tokenAddress),
    treasuryAddress: getAddress(config.treasuryAddress),
    confirmations: config.confirmations,
    fromBlock: options.fromBlock,
    head,
    transfers,
    treasuryBalance,
    ...records,
  });
}

/**
 * A per-account proof checked against the chain alone: its hash chain and balance recomputed, each
 * deposit matched to its log, and every transfer from that wallet to the treasury required to be credited.
 */
async function verifyProofFile(options: AuditOptions, io: AuditIo): Promise<AuditReport> {
  const file = options.proofFile as string;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new AuditRunError(`cannot read the proof file ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AuditRunError(`the proof file ${file} is not JSON`);
  }
  const proof = accountProofFromJson(json);
  const log = progress(options, io);
  const { client, scan, chainId } = await connectRpc(options.rpcUrl);
  if (chainId !== proof.chainId) {
    throw new AuditRunError(`the RPC serves chain ${chainId}, but the proof is for chain ${proof.chainId}`);
  }
  const token = options.token ?? getAddress(proof.tokenAddress);
  const treasury = options.treasury ?? getAddress(proof.treasuryAddress);
  const head = await client.getBlockNumber();
  log.note(
    `proof of ${proof.account.walletAddress}: ${proof.entries.length} entries; chain at ${head}`,
    true,
  );
  const transfers =
    options.fromBlock > head
      ? []
      : await fetchTreasuryTransfers(scan, {
          chainId,
          token,
          treasury,
          from: getAddress(proof.account.walletAddress) as Address,
          fromBlock: options.fromBlock,
          toBlock: head,
          blockRange: options.blockRange,
          onProgress: (p) => log.scan(p),
        });
  return checkAudit({
    chainId,
    tokenAddress: token,
    treasuryAddress: treasury,
    confirmations: options.confirmations ?? proof.confirmations,
    fromBlock: options.fromBlock,
    head,
    transfers,
    accounts: [proof.account],
    entries: proof.entries,
  });
}
