// Namespaces for netlink integration tests: named lt<pid>nl-<tag>, removed by the test that made them.
import { execFileSync } from 'node:child_process';

export interface TestNetns {
  name: string;
  path: string;
}

export function createNetns(tag: string): TestNetns {
  const name = `lt${process.pid}nl-${tag}`;
  execFileSync('ip', ['netns', 'add', name]);
  return { name, path: `/run/netns/${name}` };
}

export function deleteNetns(ns: TestNetns | undefined): void {
  if (!ns) return;
  try {
    execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** `ip -n NS -json ARGS`, parsed: iproute2 is the oracle for what the kernel now holds. */
export function ipJson<T = Array<Record<string, unknown>>>(ns: TestNetns, ...args: string[]): T {
  const out = execFileSync('ip', ['-n', ns.name, '-json', ...args], { encoding: 'utf8' });
  return JSON.parse(out === '' ? '[]' : out) as T;
}

/** Runs a command inside the namespace and returns stdout. */
export function inNs(ns: TestNetns, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns.name, cmd, ...args], { encoding: 'utf8' });
}
