import type { ChildProcess } from 'node:child_process';

/**
 * Helpers for children spawned with `detached: true`, which makes each one the leader of its own
 * process group: npm's `.bin` wrappers (anvil, ponder) spawn the real program as a grandchild, and
 * signalling the group is the only way to be sure that none of them outlives us.
 */

export function isGroupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (error) {
    // EPERM means it exists but belongs to someone else: still alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

async function waitUntilGroupGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isGroupAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return !isGroupAlive(pid);
}

/**
 * Sends `signal` to the leader only (wrappers forward it once to their child), waits for the whole
 * group to exit within `graceMs`, then SIGKILLs whatever is left of the group.
 */
export async function stopGroup(
  child: ChildProcess,
  options: { signal: NodeJS.Signals; graceMs: number },
): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  if (child.exitCode === null && child.signalCode === null) {
    try {
      child.kill(options.signal);
    } catch {
      // Already gone: the group check below decides.
    }
  } else {
    // The leader is gone but a grandchild may remain: signal the group directly.
    signalGroup(pid, options.signal);
  }
  if (await waitUntilGroupGone(pid, options.graceMs)) return;
  signalGroup(pid, 'SIGKILL');
  if (!(await waitUntilGroupGone(pid, 5_000))) {
    throw new Error(`process group ${pid} survived SIGKILL`);
  }
}

const groupsToKill = new Set<number>();
let exitHookInstalled = false;

/** Last-resort cleanup when the parent exits without calling stop (a crashed test, Ctrl-C). */
export function killGroupOnExit(pid: number): () => void {
  if (!exitHookInstalled) {
    // One listener for every group: a test file that spawns many processes must not pile them up.
    process.once('exit', () => {
      for (const group of groupsToKill) signalGroup(group, 'SIGKILL');
    });
    exitHookInstalled = true;
  }
  groupsToKill.add(pid);
  return () => {
    groupsToKill.delete(pid);
  };
}

/** Keeps the last `limit` characters of a child's output, for error messages and debugging. */
export function captureOutput(child: ChildProcess, limit = 64_000): { text(): string } {
  let buffer = '';
  const append = (chunk: Buffer) => {
    buffer = (buffer + chunk.toString('utf8')).slice(-limit);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return { text: () => buffer };
}
