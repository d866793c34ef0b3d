import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

/**
 * Helpers for children spawned with `detached: true` (`spawnGroup`), which makes each one the leader of its
 * own process group: npm's `.bin` wrappers (anvil, ponder) spawn the real program as a grandchild, and
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

/**
 * A watcher's script, run by `sh` with the group's id as `$1` and a pipe from the parent as its stdin: the
 * parent writes a line when the group is gone, and the watcher leaves; the parent's death closes the pipe
 * (EOF, no line), and the watcher sends the group SIGTERM, then SIGKILL to whatever is left after 5 s.
 * (dash's `kill` takes no `--`: `-$1` is the group.)
 */
const WATCHER_SCRIPT = [
  'read released && exit 0',
  'kill -TERM -$1 2>/dev/null || exit 0',
  'n=0',
  'while [ $n -lt 50 ] && kill -0 -$1 2>/dev/null; do sleep 0.1; n=$((n + 1)); done',
  'kill -KILL -$1 2>/dev/null',
].join('\n');

/**
 * Spawns `command` as the leader of a process group of its own (`detached: true`) that does not outlive
 * this process, however it ends:
 * - on a normal exit (`process.exit`, the end of the event loop) an `exit` hook SIGKILLs the group;
 * - on SIGKILL (a test runner's timeout, a CI cancel), where no code of ours runs, a watcher does: a small
 *   `sh` (in a group of its own, so that neither a Ctrl-C to the terminal's group nor a signal to the child's
 *   group reaches it) reading a pipe whose only writer is this process. The kernel closes the pipe when this
 *   process dies, and the watcher signals the group (`WATCHER_SCRIPT`).
 *
 * Both are dropped once the group is gone (its leader exited and no member is left), so a pid the system
 * hands out again is never signalled. Stop the group with `stopGroup`.
 *
 * Linux (and any POSIX system with `sh`); no native addon.
 */
export function spawnGroup(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true });
  const pid = child.pid;
  // No pid: the command could not be started, and the child's 'error' event says why.
  if (pid === undefined) return child;
  const forget = killGroupOnExit(pid);
  const watcher = spawn('sh', ['-c', WATCHER_SCRIPT, 'group-watcher', String(pid)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Neither the watcher nor its pipe keeps this process alive; a watcher killed by someone else only ends
  // the pipe early (EPIPE when it is released).
  watcher.unref();
  (watcher.stdin as Socket | null)?.unref();
  watcher.stdin?.on('error', () => {});
  watcher.on('error', () => {});
  const release = () => {
    forget();
    watcher.stdin?.end('released\n');
  };
  child.once('exit', () => {
    if (!isGroupAlive(pid)) return release();
    // A grandchild outlived the leader: keep watching until the group is empty (or `stopGroup` empties it).
    const check = setInterval(() => {
      if (isGroupAlive(pid)) return;
      clearInterval(check);
      release();
    }, 100);
    check.unref();
  });
  return child;
}

const groupsToKill = new Set<number>();
let exitHookInstalled = false;

/** Last-resort cleanup when the parent exits without calling stop (a crashed test, Ctrl-C). */
function killGroupOnExit(pid: number): () => void {
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

/**
 * The pids of the live processes whose command line (its arguments, `argv[0]` first) satisfies `match`. A
 * zombie, whose command line is empty, is not live.
 */
export function findProcesses(match: (args: string[]) => boolean): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').slice(0, -1);
      if (args.length > 0 && match(args)) found.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return found;
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
