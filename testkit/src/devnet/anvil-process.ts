import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { findFreePort } from './ports.ts';
import { captureOutput, spawnGroup, stopGroup } from './process-group.ts';

/**
 * How many of the mnemonic's accounts every devnet funds with ETH (`anvil --accounts`): anvil's ten
 * plus the relayer's.
 */
export const ANVIL_ACCOUNT_COUNT = 11;

/** Resolved from this file, not the cwd: tests and the orchestrator run from anywhere. */
const ANVIL_WRAPPER = fileURLToPath(new URL('../../../node_modules/.bin/anvil', import.meta.url));

/**
 * The real anvil binary of this platform's package (`@foundry-rs/anvil-linux-amd64` and its siblings), run
 * directly: the `.bin/anvil` wrapper is a Node process (~50 MB resident) that only spawns it and forwards
 * signals. Falls back to the wrapper where that package cannot be found.
 */
function anvilCommand(): { command: string; prefix: string[] } {
  const os = process.platform === 'win32' ? 'win32' : process.platform;
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const name = process.platform === 'win32' ? 'anvil.exe' : 'anvil';
  try {
    const binary = createRequire(import.meta.url).resolve(`@foundry-rs/anvil-${os}-${arch}/bin/${name}`);
    if (existsSync(binary)) return { command: binary, prefix: [] };
  } catch {
    // Not installed for this platform: the wrapper knows its other places.
  }
  return { command: process.execPath, prefix: [ANVIL_WRAPPER] };
}

export type Anvil = {
  rpcUrl: string;
  port: number;
  /** Stops anvil (and the `.bin` wrapper when it runs through it); resolves once its process group is gone. */
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
 * Starts anvil on 127.0.0.1 with the devnet's accounts (`devAccounts`, relayer included) funded and
 * resolves once it answers `eth_chainId` and `prepare` (when given) has resolved; anvil is stopped again
 * when either fails.
 */
export async function spawnAnvil(
  options: StartAnvilOptions = {},
  prepare?: (rpcUrl: string) => Promise<void>,
): Promise<Anvil> {
  // A port picked for us can be taken by a concurrent test before anvil binds it: try again.
  const attempts = options.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      return await startOnce(options.port ?? (await findFreePort()), options, prepare);
    } catch (error) {
      lastError = error;
      if (!(error instanceof AnvilStartError && /address (already )?in use/i.test(error.message)))
        throw error;
    }
  }
  throw lastError;
}

async function startOnce(
  port: number,
  options: StartAnvilOptions,
  prepare: ((rpcUrl: string) => Promise<void>) | undefined,
): Promise<Anvil> {
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

  const { command, prefix } = anvilCommand();
  const child = spawnGroup(command, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = captureOutput(child);
  const rpcUrl = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= stopGroup(child, { signal: 'SIGINT', graceMs: 10_000 });
    return stopped;
  };

  try {
    await waitForChainId(rpcUrl, chainId, child, output.text);
    await prepare?.(rpcUrl);
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
