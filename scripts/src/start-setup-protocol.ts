/**
 * start.ts's side of its setup helper (start-setup.ts): the requests it answers, and a client that forks it.
 * Node built-ins only, like start.ts itself.
 */
import { fork } from 'node:child_process';
import type { ChainSetup } from '@chainmeter/schema';
import type { DevnetChain, PrepareDevnetChain } from '@chainmeter/testkit/persistent-devnet';
import type { StartConfig } from './env.ts';

export type SetupRequest =
  | { method: 'config' }
  | { method: 'prepare'; rpcUrl: string; kept: Parameters<PrepareDevnetChain>[1] }
  | { method: 'verify'; chain: ChainSetup };

interface Answers {
  config: StartConfig;
  prepare: DevnetChain | { reset: string };
  verify: string[];
}

export interface SetupHelper {
  request<R extends SetupRequest>(request: R): Promise<Answers[R['method']]>;
  /** Lets the helper exit (it does once its IPC channel closes). */
  close(): void;
}

export function forkSetupHelper(): SetupHelper {
  const child = fork(new URL('./start-setup.ts', import.meta.url), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 0;
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  child.on('message', (message: { id: number; result?: unknown; error?: string }) => {
    const waiting = pending.get(message.id);
    pending.delete(message.id);
    if (message.error !== undefined) waiting?.reject(new Error(message.error));
    else waiting?.resolve(message.result);
  });
  const failAll = (error: Error) => {
    for (const waiting of pending.values()) waiting.reject(error);
    pending.clear();
  };
  child.on('error', failAll);
  child.on('exit', (code, signal) => failAll(new Error(`the setup helper exited (${code ?? signal})`)));
  return {
    request: (request) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
        child.send({ id, request });
      }),
    close: () => {
      if (child.connected) child.disconnect();
    },
  };
}
