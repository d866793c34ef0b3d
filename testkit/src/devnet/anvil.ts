import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createTestClient, type Hash, http } from 'viem';
import { ANVIL_ACCOUNT_COUNT } from './accounts.ts';
import { placeCanonicalContracts } from './canonical-contracts.ts';
import { findFreePort } from './ports.ts';
import { captureOutput, killGroupOnExit, stopGroup } from './process-group.ts';

/** Resolved from this file, not the cwd: tests and the orchestrator run from anywhere. */
const ANVIL_BIN = fileURLToPath(new URL('../../../node_modules/.bin/anvil', import.meta.url));

export type Anvil = {
  rpcUrl: string;
  port: number;
  /** Stops the `.bin` wrapper and the real anvil it spawned; resolves once both are gone. */
  stop(): Promise<void>;
  /** The node's recent output (stdout and stderr), for debugging. */
  logs(): string;
};

export type StartAnvilOptions = {
  /** Omitted: a free port. */
  port?: number;
  /** Default 31337. */
  chainId?: number;
  /** Seconds between blocks (interval mining). Omitted: a block per transaction (automine). */
  blockTime?: number;
  /**
   * Loaded at start when it exists, dumped on exit and every `stateIntervalSeconds`, so that a
   * restarted devnet keeps its chain (blocks and transactions included).
   */
  stateFile?: string;
  /** Default 5 when `stateFile` is set. */
  stateIntervalSeconds?: number;
  /** `false` without `blockTime`: no blocks until `mineBlocks` (or `evm_mine`). Default true. */
  automine?: boolean;
};

export class AnvilStartError extends Error {
  override name = 'AnvilStartError';
}

const READY_TIMEOUT_MS = 15_000;

/**
 * Starts anvil on 127.0.0.1 and resolves once it answers `eth_chainId`, with the devnet's accounts
 * (`devAccounts`, relayer included) funded and the canonical contracts placed (Permit2, the x402
 * Permit2 proxies, Multicall3: see `canonical-contracts.ts`).
 *
 * @example
 * const anvil = await startAnvil();
 * try { await deployTestUsdc(anvil.rpcUrl); } finally { await anvil.stop(); }
 */
export async function startAnvil(options: StartAnvilOptions = {}): Promise<Anvil> {
  // A port picked for us can be taken by a concurrent test before anvil binds it: try again.
  const attempts = options.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      return await startOnce(options.port ?? (await findFreePort()), options);
    } catch (error) {
      lastError = error;
      if (!(error instanceof AnvilStartError && /address (already )?in use/i.test(error.message)))
        throw error;
    }
  }
  throw lastError;
}

async function startOnce(port: number, options: StartAnvilOptions): Promise<Anvil> {
  const chainId = options.chainId ?? 31337;
  const args = ['--host', '127.0.0.1', '--port', String(port), '--chain-id', String(chainId)];
  // Every role in `devAccounts` (the relayer included) starts with anvil's 10,000 ETH.
  args.push('--accounts', String(ANVIL_ACCOUNT_COUNT));
  if (options.blockTime !== undefined) args.push('--block-time', String(options.blockTime));
  else if (options.automine === false) args.push('--no-mining');
  if (options.stateFile !== undefined) {
    args.push('--state', options.stateFile, '--state-interval', String(options.stateIntervalSeconds ?? 5));
    // Keeps the states of past blocks, so that calls at an old block still work after a restart.
    args.push('--preserve-historical-states');
  }

  const child = spawn(process.execPath, [ANVIL_BIN, ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = captureOutput(child);
  const forgetOnExit = killGroupOnExit(child.pid ?? 0);
  const rpcUrl = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= stopGroup(child, { signal: 'SIGINT', graceMs: 10_000 }).finally(forgetOnExit);
    return stopped;
  };

  try {
    await waitForChainId(rpcUrl, chainId, child, output.text);
    // Permit2, the x402 proxies and Multicall3 at their canonical addresses, as on Base.
    await placeCanonicalContracts(rpcUrl);
  } catch (error) {
    await stop();
    throw error;
  }
  return { rpcUrl, port, stop, logs: output.text };
}

async function waitForChainId(
  rpcUrl: string,
  chainId: number,
  child: { exitCode: number | null; signalCode: NodeJS.Signals | null },
  logs: () => string,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new AnvilStartError(
        `anvil exited before it was ready (${child.exitCode ?? child.signalCode}):\n${logs()}`,
      );
    }
    // Until our anvil says it listens, whatever answers on the port is another node (a devnet already
    // running there): ours will fail to bind and exit, and we must not use the other one meanwhile.
    if (!logs().includes(`Listening on ${new URL(rpcUrl).host}`)) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    try {
      const response = await fetch(rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(1_000),
      });
      const body = (await response.json()) as { result?: string };
      if (body.result !== undefined) {
        if (Number(body.result) !== chainId) {
          throw new AnvilStartError(
            `anvil at ${rpcUrl} answers chain ${Number(body.result)}, not ${chainId}`,
          );
        }
        return;
      }
    } catch (error) {
      if (error instanceof AnvilStartError) throw error;
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new AnvilStartError(
    `anvil did not answer eth_chainId at ${rpcUrl} within ${READY_TIMEOUT_MS} ms:\n${logs()}`,
  );
}

function testClient(rpcUrl: string) {
  return createTestClient({ mode: 'anvil', transport: http(rpcUrl), pollingInterval: 50 });
}

/** Mines `n` empty blocks (or blocks of whatever is pending). */
export async function mineBlocks(rpcUrl: string, n: number): Promise<void> {
  await testClient(rpcUrl).mine({ blocks: n });
}

/** Turns automine on or off (off: transactions wait in the pool until `mineBlocks`). */
export async function setAutomine(rpcUrl: string, enabled: boolean): Promise<void> {
  await testClient(rpcUrl).setAutomine(enabled);
}

/** `evm_snapshot`: an id to `revert` to. */
export async function snapshot(rpcUrl: string): Promise<Hash> {
  return testClient(rpcUrl).snapshot();
}

/**
 * `evm_revert`: the chain goes back to the snapshot (blocks after it are dropped, their transactions
 * forgotten). Mine more blocks afterwards to move the head past the old height, as a reorg would.
 */
export async function revert(rpcUrl: string, id: Hash): Promise<void> {
  await testClient(rpcUrl).revert({ id });
}

/**
 * `anvil_reorg`: replaces the newest `depth` blocks with new empty blocks at the same heights (new
 * hashes), dropping their transactions; the head keeps its height.
 */
export async function reorg(rpcUrl: string, depth: number): Promise<void> {
  await testClient(rpcUrl).request({
    method: 'anvil_reorg' as never,
    params: [depth, []] as never,
  });
}
