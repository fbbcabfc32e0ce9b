// Every namespace, process and directory the harness creates is recorded twice: in memory (for
// cleanup at exit of this process) and in a file under RUN_ROOT/<pid>/ (so the integration
// project's global teardown can remove what a crashed or killed worker left behind).
import { appendFileSync, mkdirSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { alive } from './exec.js';

export const RUN_ROOT = '/tmp/loom-test';

/**
 * Keep mode (the demo): nothing is recorded for cleanup, daemons are detached and outlive this
 * process, and files live under `root`. Whoever turns it on removes things itself.
 */
let keepRoot: string | undefined;
export function keepResources(root: string): void {
  keepRoot = root;
}
export function keeping(): boolean {
  return keepRoot !== undefined;
}
/** Where a process's hosts keep their files. */
export function runDir(): string {
  return keepRoot ?? join(RUN_ROOT, String(process.pid));
}

export type Resource =
  | { kind: 'netns'; name: string }
  | { kind: 'pid'; pid: number; exe: string }
  | { kind: 'dir'; path: string };

const live = new Map<string, Resource>();

function key(r: Resource): string {
  return r.kind === 'netns' ? `n:${r.name}` : r.kind === 'pid' ? `p:${r.pid}` : `d:${r.path}`;
}

function ownDir(): string {
  const dir = join(RUN_ROOT, String(process.pid));
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function track(r: Resource): void {
  if (keepRoot) return;
  live.set(key(r), r);
  appendFileSync(join(ownDir(), 'resources'), JSON.stringify(r) + '\n');
}

export function untrack(r: Resource): void {
  live.delete(key(r));
}

/** Short, unique-per-process names: namespaces and interfaces must stay under 15 characters. */
let counter = 0;
export function uniqueTag(): string {
  counter += 1;
  return `${process.pid.toString(36)}${counter.toString(36)}`;
}

/** Synchronously releases resources: processes first (by PID), then namespaces, then dirs. */
export function releaseSync(resources: Iterable<Resource>): void {
  const list = [...resources];
  for (const r of list) {
    if (r.kind === 'pid' && isOurProcess(r.pid, r.exe)) {
      try {
        process.kill(r.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  for (const r of list) {
    if (r.kind === 'netns' && existsSync(`/run/netns/${r.name}`)) {
      try {
        execFileSync('ip', ['netns', 'del', r.name], { stdio: 'ignore' });
      } catch {
        /* best effort: reported by the global teardown if it stays */
      }
    }
  }
  for (const r of list) {
    if (r.kind === 'dir') rmSync(r.path, { recursive: true, force: true });
  }
}

/** Guards against PID reuse: only kill a PID whose executable is the one we started. */
function isOurProcess(pid: number, exe: string): boolean {
  if (!alive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.split('\0')[0]?.endsWith(exe) ?? false;
  } catch {
    return false;
  }
}

let hooked = false;
/** Installs exit/signal handlers once per process so a failing test leaves nothing behind. */
export function installExitCleanup(): void {
  if (hooked || keepRoot) return;
  hooked = true;
  process.on('exit', () => {
    releaseSync(live.values());
    rmSync(join(RUN_ROOT, String(process.pid)), { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => process.exit(130));
  }
}

/** Cleans up after processes that are gone (crashed or killed workers). Returns what it removed. */
export function sweepDeadOwners(): string[] {
  if (!existsSync(RUN_ROOT)) return [];
  const removed: string[] = [];
  for (const owner of readdirSync(RUN_ROOT)) {
    const pid = Number(owner);
    if (!Number.isInteger(pid) || alive(pid)) continue;
    const file = join(RUN_ROOT, owner, 'resources');
    const resources: Resource[] = existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Resource)
      : [];
    releaseSync(resources);
    for (const r of resources) if (r.kind === 'netns') removed.push(r.name);
    rmSync(join(RUN_ROOT, owner), { recursive: true, force: true });
  }
  return removed;
}
