/**
 * The short-lived helper of `npm start` (forked by start.ts, answering over its IPC channel): what needs
 * zod and viem runs here, so that start.ts, which stays up as long as the platform does, never loads them
 * (~55 MB of resident memory). It validates the configuration, sets up the devnet's contracts and balances
 * on the anvil start.ts runs, and checks the chain; it exits when start.ts disconnects.
 */
import { verifyChainSetup } from '@chainmeter/schema';
import type { PrepareDevnetChain } from '@chainmeter/testkit/persistent-devnet';
import { loadStartConfig } from './env.ts';
import type { SetupRequest } from './start-setup-protocol.ts';

// Loaded while start.ts starts anvil: the first `prepare` finds it ready.
const devnetChain = import('@chainmeter/testkit/devnet-chain');

async function answer(request: SetupRequest): Promise<unknown> {
  switch (request.method) {
    case 'config':
      return loadStartConfig();
    case 'prepare': {
      const prepare: PrepareDevnetChain = (await devnetChain).prepareDevnetChain;
      return prepare(request.rpcUrl, request.kept);
    }
    case 'verify':
      return verifyChainSetup(request.chain);
  }
}

process.on('message', (message: { id: number; request: SetupRequest }) => {
  answer(message.request).then(
    (result) => process.send?.({ id: message.id, result }),
    (error: unknown) =>
      process.send?.({ id: message.id, error: error instanceof Error ? error.message : String(error) }),
  );
});
