/**
 * The soak's child processes: each the leader of its own process group (so a `.bin` wrapper's grandchild
 * goes with it), its output appended to a log file in the run's folder, killed with the soak if the soak dies.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { captureOutput, signalGroup, spawnGroup, stopGroup } from '@chainmeter/testkit/process-group';

/** Children that exited without the soak stopping or killing them: a part that died on its own. */
export const unexpectedExits: { name: string; at: number; how: string }[] = [];

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** The recent output, for error messages. */
  logs(): string;
  /** Whether the process has exited (by itself or by a signal). */
  exited(): boolean;
  /** `signal` to the leader, then SIGKILL to the group after `graceMs`; resolves once the group is gone. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  /** A signal to the whole group (SIGKILL for a crash, SIGSTOP/SIGCONT for a pause). */
  signal(signal: NodeJS.Signals): void;
}

export function spawnChild(
  name: string,
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string; exits?: boolean },
): Child {
  const child = spawnGroup(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = captureOutput(child, 32_000);
  const file = createWriteStream(options.logFile, { flags: 'a' });
  child.stdout?.pipe(file);
  child.stderr?.pipe(file);
  const pid = child.pid;
  // A command that cannot start (not installed) says so twice: no pid now, an 'error' event just after,
  // which would end the soak unhandled instead of letting it stop what it started.
  child.on('error', () => {});
  if (pid === undefined) throw new Error(`${name}: ${command} could not be started (is it installed?)`);
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  let stopped: Promise<void> | undefined;
  let stopping = options.exits === true;
  child.once('exit', (code, signal) => {
    if (!stopping) unexpectedExits.push({ name, at: Date.now(), how: signal ?? `exit code ${code}` });
  });
  return {
    name,
    process: child,
    logs: output.text,
    exited,
    stop: (signal = 'SIGTERM', graceMs = 15_000) => {
      stopping = true;
      stopped ??= stopGroup(child, { signal, graceMs });
      return stopped;
    },
    signal: (signal) => {
      if (signal !== 'SIGSTOP' && signal !== 'SIGCONT') stopping = true;
      signalGroup(pid, signal);
    },
  };
}

/** Polls `probe` every `everyMs` until it is true; throws `what` after `timeoutMs`, or at once if `child` exits. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; everyMs?: number; child?: Child },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (options.child?.exited()) {
      throw new Error(
        `${options.child.name} exited while waiting for ${what}:\n${options.child.logs().slice(-4_000)}`,
      );
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${options.timeoutMs} ms waiting for ${what}${options.child ? `:\n${options.child.logs().slice(-4_000)}` : ''}`,
      );
    }
    await sleep(options.everyMs ?? 100);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Whether `url` answers 200 within `timeoutMs`. */
export async function answers200(
  url: string,
  timeoutMs = 2_000,
  headers?: Record<string, string>,
): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}
