/**
 * `node api/src/main.ts`: validates the configuration and the chain it points at, then serves. Refuses to
 * start (exit 1) with a list of what is wrong rather than serving on a bad setup.
 */
import { verifyChainSetup } from '@chainmeter/schema';
import { ConfigError, loadConfig } from './env.ts';
import { startApi } from './server.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const problems = await verifyChainSetup(config);
  if (problems.length > 0) throw new ConfigError(problems);
  const api = await startApi(config);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await api.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`ChainMeter API refused to start.\n${error.message}`);
  } else {
    console.error('ChainMeter API failed to start:', error);
  }
  process.exit(1);
});
