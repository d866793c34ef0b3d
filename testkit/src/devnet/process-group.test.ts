/**
 * `spawnGroup`'s children die with their parent, even when the parent is SIGKILLed (no exit hook runs), and a
 * group that ends normally leaves no watcher behind. Real processes throughout: a Node parent that spawns
 * through `spawnGroup`, and a child with a grandchild in its group.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { findProcesses, isGroupAlive, signalGroup, spawnGroup, stopGroup } from './process-group.ts';

const PROCESS_GROUP_MODULE = new URL('./process-group.ts', import.meta.url).href;

/** Polls `check` every 50 ms until it is true; throws after `timeoutMs`. */
async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids of the live watchers (`sh -c … group-watcher <pid>`) of group `pid`. */
function watchersOf(pid: number): number[] {
  return findProcesses((args) => {
    const at = args.indexOf('group-watcher');
    return at > 0 && args[at + 1] === String(pid);
  });
}

const dir = mkdtempSync(path.join(tmpdir(), 'cm-process-group-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Children spawned here, and groups, to clean up if a test fails half-way. */
const parents: ChildProcess[] = [];
const groups: number[] = [];
afterEach(() => {
  for (const parent of parents.splice(0)) parent.kill('SIGKILL');
  for (const group of groups.splice(0)) signalGroup(group, 'SIGKILL');
});

/**
 * A Node process that spawns `command` through `spawnGroup` and prints the child's pid; it then idles until
 * it is killed.
 */
async function parentOf(
  command: string,
  args: string[],
): Promise<{ parent: ChildProcess; childPid: number }> {
  const script = `
    const { spawnGroup } = await import(${JSON.stringify(PROCESS_GROUP_MODULE)});
    const child = spawnGroup(${JSON.stringify(command)}, ${JSON.stringify(args)}, { stdio: 'ignore' });
    console.log(child.pid);
    setInterval(() => {}, 1_000_000);
  `;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  parents.push(parent);
  const line = await new Promise<string>((resolve, reject) => {
    parent.once('exit', (code) => reject(new Error(`the parent exited (${code}) before its child started`)));
    createInterface({ input: parent.stdout as NodeJS.ReadableStream }).once('line', resolve);
  });
  const childPid = Number(line);
  groups.push(childPid);
  return { parent, childPid };
}

describe('spawnGroup', () => {
  it.each([
    // A shell whose own child (a grandchild, in its group) sleeps: both end on the watcher's SIGTERM.
    ['a child and its grandchild', ''],
    // A child and grandchild that ignore SIGTERM (an ignored signal stays ignored across exec): the
    // watcher's SIGKILL, 5 s later, ends them.
    ['a child that ignores SIGTERM', "trap '' TERM; "],
  ])(
    '%s die(s) when the parent is SIGKILLed',
    async (_name, trap) => {
      const ready = path.join(dir, `ready-${randomBytes(4).toString('hex')}`);
      const { parent, childPid } = await parentOf('sh', ['-c', `${trap}sleep 600 & touch '${ready}'; wait`]);
      await until('the child to be ready', () => existsSync(ready), 10_000);
      await until('the watcher to start', () => watchersOf(childPid).length === 1, 10_000);
      expect(isGroupAlive(childPid)).toBe(true);

      const parentGone = new Promise((resolve) => parent.once('exit', resolve));
      parent.kill('SIGKILL');
      await parentGone;

      await until(`group ${childPid} to be gone`, () => !isGroupAlive(childPid), 20_000);
      expect(isAlive(childPid)).toBe(false);
      await until('the watcher to leave', () => watchersOf(childPid).length === 0, 5_000);
    },
    40_000,
  );

  it('releases the watcher once the group is stopped, without signalling anyone', async () => {
    const child = spawnGroup('sleep', ['600'], { stdio: 'ignore' });
    const pid = child.pid as number;
    groups.push(pid);
    await until('the watcher to start', () => watchersOf(pid).length === 1, 10_000);
    await stopGroup(child, { signal: 'SIGTERM', graceMs: 5_000 });
    expect(isGroupAlive(pid)).toBe(false);
    await until('the watcher to leave', () => watchersOf(pid).length === 0, 5_000);
  });
});
