/**
 * `npm start`: the whole platform on embedded defaults — a local chain with the test USDC (unless RPC_URL
 * points at a real one), the Ponder indexer, the API with the web client on its origin. Prints the URLs and a
 * line `ready` once everything answers; Ctrl-C stops it all cleanly and keeps the data for the next start.
 *
 * This process supervises the others for as long as they run, so it loads only Node's built-ins and the
 * testkit's process helpers: the configuration's validation and the devnet's contracts (zod, viem) run in a
 * helper process that exits once the chain is ready (start-setup.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEVNET_CHAIN_ID } from '@chainmeter/schema/chains';
import { type Indexer, startIndexer } from '@chainmeter/testkit/indexer';
import { type PersistentDevnet, startPersistentDevnet } from '@chainmeter/testkit/persistent-devnet';
import { findFreePort } from '@chainmeter/testkit/ports';
import { captureOutput, spawnGroup, stopGroup } from '@chainmeter/testkit/process-group';
import { ensureWebBuild, isWebBuildFresh } from '@chainmeter/testkit/web-build';
import { seedPonderPgliteDir } from './ponder-pglite.ts';
import { forkSetupHelper } from './start-setup-protocol.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** 8 hex digits of a hash of what Ponder builds the indexer from: its config, schema and source files. */
function indexerBuildTag(): string {
  const indexer = path.join(ROOT, 'indexer');
  const sources = readdirSync(path.join(indexer, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
    .sort()
    .map((file) => path.join('src', file));
  const hash = createHash('sha256');
  for (const file of ['ponder.config.ts', 'ponder.schema.ts', ...sources]) {
    hash.update(file).update(readFileSync(path.join(indexer, file)));
  }
  return hash.digest('hex').slice(0, 8);
}
const API_MAIN = path.join(ROOT, 'api/src/main.ts');
/**
 * Node flags of the long-running children (the API and Ponder). V8 sizes the young generation for
 * throughput: Ponder, which polls the chain every 100 ms, grew it to 128 MB of resident memory; 8 MB
 * semi-spaces cost more frequent (short) scavenges. And a few full collections after the start free what the
 * start left behind (see collect-startup-garbage.ts).
 */
const COLLECT_STARTUP_GARBAGE = [
  '--expose-gc',
  '--import',
  path.join(ROOT, 'scripts/src/collect-startup-garbage.ts'),
];
/**
 * Both PGlites' WebAssembly (the API's and Ponder's, each a build of PostgreSQL) stays on V8's baseline
 * compiler, Liftoff. With V8's defaults, dynamic tiering hands the hottest functions to the optimising
 * compiler as they get hot; for one of them (the function of ~107-123 kB of WebAssembly that every query
 * runs through, in both PGlite versions) that compilation takes a background thread 6-18 s and ~610-650 MB
 * of compiler memory, freed when it ends: it made most of the peak of a start (the API ~770 MB, Ponder
 * ~0.9-1.1 GB), and of its CPU. `--no-wasm-tier-up` alone does not stop it: dynamic tiering is a flag of
 * its own. The price is in the embedded database's speed: up to a fifth on short statements, up to ~1.7x
 * on a query computing over many rows (docs/performance.md, "`npm start`'s footprint"); on PostgreSQL none runs.
 */
const WASM_BASELINE_ONLY = ['--no-wasm-tier-up', '--no-wasm-dynamic-tiering'];
const API_NODE_ARGS = ['--max-semi-space-size=8', ...WASM_BASELINE_ONLY, ...COLLECT_STARTUP_GARBAGE];
/**
 * Ponder serves few requests, so it runs smaller still: 2 MB semi-spaces and `--optimize-for-size` (~50 MB
 * less once settled).
 */
const PONDER_NODE_ARGS = [
  '--max-semi-space-size=2',
  '--optimize-for-size',
  ...WASM_BASELINE_ONLY,
  ...COLLECT_STARTUP_GARBAGE,
];

/**
 * glibc malloc settings for the API. By default the threshold above which an allocation gets its own mapping
 * (returned to the system when freed) grows with every such block freed, up to 32 MB; the start's big
 * short-lived buffers (PGlite's WebAssembly code and data files, initdb's dump, compilation memory) then land
 * in the main heap, which keeps their pages once freed: ~100-140 MB of the API's resident memory. Fixed at
 * glibc's initial 128 kB, big blocks go back to the system when freed. Not for Ponder: its starts were
 * markedly slower with it (it saves Ponder 30-70 MB). Only when the environment sets no tunables of its own.
 */
const API_MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072';

const say = (line: string) => console.log(line);

async function main(): Promise<void> {
  // The processes started later inherit it.
  if (existsSync(path.join(ROOT, '.env'))) process.loadEnvFile(path.join(ROOT, '.env'));
  const setup = forkSetupHelper();
  const stops: (() => Promise<void>)[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    setup.close();
    say('stopping...');
    for (const stop of stops.reverse()) await stop().catch((error) => console.error(String(error)));
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    const config = await setup.request({ method: 'config' });
    const dataDir = path.resolve(ROOT, config.DATA_DIR);
    mkdirSync(dataDir, { recursive: true });
    // The web build needs nothing else: it runs while the devnet, the indexer and the API start.
    const webBuilt = buildWebIfStale();
    webBuilt.catch(() => undefined);
    let chain: { rpcUrl: string; chainId: number; token: string; treasury: string };
    let devnet: PersistentDevnet | null = null;
    if (config.RPC_URL) {
      const chainId = config.CHAIN_ID;
      if (!chainId || !config.USDC_ADDRESS || !config.TREASURY_ADDRESS) {
        throw new Error('With RPC_URL set, CHAIN_ID, USDC_ADDRESS and TREASURY_ADDRESS are required too.');
      }
      chain = {
        rpcUrl: config.RPC_URL,
        chainId,
        token: config.USDC_ADDRESS,
        treasury: config.TREASURY_ADDRESS,
      };
      say(`chain     ${chain.rpcUrl} (chain ${chainId}; no devnet started)`);
    } else {
      devnet = await startPersistentDevnet({
        dataDir,
        dependentDirs: [path.join(dataDir, 'api'), path.join(dataDir, 'ponder')],
        port: config.DEVNET_PORT,
        blockTime: config.DEVNET_BLOCK_TIME,
        prepare: (rpcUrl, kept) => setup.request({ method: 'prepare', rpcUrl, kept }),
      });
      stops.push(() => (devnet as PersistentDevnet).stop());
      if (devnet.resetReason === 'first start') say('devnet    new chain and fresh local data (first start)');
      else if (devnet.resetReason)
        say(`devnet    started from scratch, local data reset: ${devnet.resetReason}`);
      else say('devnet    chain and local data kept from the previous run');
      chain = {
        rpcUrl: devnet.anvil.rpcUrl,
        chainId: DEVNET_CHAIN_ID,
        token: devnet.token,
        treasury: devnet.treasury,
      };
      say(
        `chain     ${chain.rpcUrl} (chain ${DEVNET_CHAIN_ID}, a block every ${config.DEVNET_BLOCK_TIME} s)`,
      );
    }

    const problems = await setup.request({
      method: 'verify',
      chain: {
        rpcUrl: chain.rpcUrl,
        chainId: chain.chainId,
        usdcAddress: chain.token,
        treasuryAddress: chain.treasury,
      },
    });
    setup.close();
    if (problems.length > 0)
      throw new Error(`The chain configuration is wrong:\n  - ${problems.join('\n  - ')}`);
    say(`usdc      ${chain.token}`);
    say(`treasury  ${chain.treasury}`);

    // The API and the indexer start side by side: the API only needs the indexer's URL, and its /readyz
    // waits for the indexer to answer. Ponder would move to another port if this one were taken, so the
    // port is chosen (and checked free) here and the indexer must end up on it.
    const indexerPort = (await isPortFree(config.INDEXER_PORT)) ? config.INDEXER_PORT : await findFreePort();
    const indexerLog = path.join(dataDir, 'indexer.log');
    const ponderDataDir = path.join(dataDir, 'ponder');
    // A first start copies the cluster `npm install` made, rather than have Ponder run initdb (ponder-pglite.ts).
    if (!config.PONDER_DATABASE_URL) seedPonderPgliteDir(ponderDataDir);
    const indexerStarting = startIndexer({
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      usdcAddress: chain.token,
      treasuryAddress: chain.treasury,
      startBlock: config.START_BLOCK,
      port: indexerPort,
      databaseUrl: config.PONDER_DATABASE_URL,
      // One schema per chain, token and indexer build: a different devnet never mixes with an old index, and
      // Ponder refuses a schema another build made (a changed indexer re-indexes into a new one).
      databaseSchema: `chainmeter_${chain.chainId}_${chain.token.slice(2, 10).toLowerCase()}_${indexerBuildTag()}`,
      dataDir: ponderDataDir,
      logFile: indexerLog,
      nodeArgs: PONDER_NODE_ARGS,
    });
    // A stop during the start leaves a child that is still starting to the exit hook (SIGKILL of its group).
    let indexer: Indexer | undefined;
    indexerStarting.then((started) => (indexer = started)).catch(() => undefined);
    stops.push(async () => indexer?.stop());
    const apiStarting = startApiProcess(
      {
        PORT: String(config.PORT),
        RPC_URL: chain.rpcUrl,
        CHAIN_ID: String(chain.chainId),
        USDC_ADDRESS: chain.token,
        TREASURY_ADDRESS: chain.treasury,
        INDEXER_URL: `http://127.0.0.1:${indexerPort}`,
        DATA_DIR: dataDir,
      },
      path.join(dataDir, 'api.log'),
    );
    let api: StartedApi | undefined;
    apiStarting.then((started) => (api = started)).catch(() => undefined);
    stops.push(async () => api?.stop());
    const { port: boundPort, url: indexerUrl } = await indexerStarting;
    if (boundPort !== indexerPort)
      throw new Error(`the indexer took port ${boundPort}, not ${indexerPort} (taken meanwhile?)`);
    say(`indexer   ${indexerUrl} (logs in ${path.relative(ROOT, indexerLog)})`);
    const { child: apiChild, logs: apiLogs } = await apiStarting;
    // The API serves web/dist from the moment it exists: `ready` means the web client is there too.
    await webBuilt;
    const origin = `http://localhost:${config.PORT}`;
    say(`api       ${origin}/graphql`);
    say(`web       ${origin}/`);
    say('ready');
    apiChild.on('exit', (code) => {
      if (!stopping) {
        console.error(`the API exited (${code}):\n${apiLogs().slice(-4_000)}`);
        void stopAll(1);
      }
    });
  } catch (error) {
    console.error(`\nChainMeter could not start: ${(error as Error).message}`);
    await stopAll(1);
  }
}

async function buildWebIfStale(): Promise<void> {
  // `npm install` builds it (postinstall.ts): this is for a source changed since, or a failed build.
  if (!existsSync(path.join(ROOT, 'web', 'index.html')) || isWebBuildFresh()) return;
  say('web       building the web client...');
  try {
    await ensureWebBuild();
  } catch (error) {
    // The API and GraphQL stay useful to integrators without it: warn rather than refuse to start.
    console.error((error as Error).message);
    say('web       the web client did not build (see above); serving the API only');
  }
}

/** Whether 127.0.0.1:`port` can be bound right now. */
function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

interface StartedApi {
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

async function startApiProcess(env: Record<string, string>, logFile: string): Promise<StartedApi> {
  const child = spawnGroup(process.execPath, [...API_NODE_ARGS, API_MAIN], {
    cwd: ROOT,
    env: { GLIBC_TUNABLES: API_MALLOC_TUNABLES, ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = captureOutput(child, 256_000);
  // Structured logs go to a file; a start-up refusal (plain text on stderr) to the terminal as well.
  child.stdout?.pipe(createWriteStream(logFile, { flags: 'a' }));
  child.stderr?.pipe(process.stderr);
  const url = `http://127.0.0.1:${env.PORT}`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the API refused to start:\n${output.text().slice(-4_000)}`);
    const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) {
      return {
        child,
        logs: output.text,
        stop: () => stopGroup(child, { signal: 'SIGTERM', graceMs: 15_000 }),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the API did not become ready within 120 s:\n${output.text().slice(-4_000)}`);
}

await main();
