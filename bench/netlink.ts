// Plumbs N containers with the netlink library and with the same operations as `ip` commands,
// in one run, in namespaces created (and removed) here. Per container:
//   veth vX (MTU 1450) with peer eth0 created in the container netns, vX up, host route to the
//   container, lo + eth0 up, IPv4 + IPv6 (nodad) address, IPv4 + IPv6 default route.
// Prints per-phase totals, then `RESULT containers=N p50_ms=.. p99_ms=.. ratio_vs_iproute2=..`
// (p50/p99: library time per container; ratio: iproute2 total / library total).
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { Netlink } from '../src/netlink/index.js';

const run = promisify(execFile);
const N = Number(process.env.NETLINK_BENCH_CONTAINERS ?? 200);
if (!Number.isInteger(N) || N < 1 || N > 250) {
  console.error('NETLINK_BENCH_CONTAINERS must be an integer 1..250 (one /24 per container)');
  process.exit(2);
}
const prefix = `lt${process.pid}nb`;
const hostNs = `${prefix}-host`;
const libNs = (i: number): string => `${prefix}-l${i}`;
const ipNs = (i: number): string => `${prefix}-i${i}`;
const created: string[] = [];

function ipBatch(lines: string[]): void {
  execFileSync('ip', ['-batch', '-'], { input: lines.join('\n') });
}

function addNamespaces(names: string[]): void {
  ipBatch(names.map((n) => `netns add ${n}`));
  created.push(...names);
}

function cleanup(): void {
  if (created.length === 0) return;
  try {
    ipBatch(created.map((n) => `netns del ${n}`));
  } catch {
    for (const n of created) {
      try { execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' }); } catch { /* gone */ }
    }
  }
  created.length = 0;
}

/** Addresses of container i; each plan (library 198.18/fd00:18, iproute2 198.19/fd00:19) is disjoint. */
function plan(i: number, v4Second: 18 | 19) {
  return {
    v4: `198.${v4Second}.${i}.2/24`,
    gw4: `198.${v4Second}.${i}.1`,
    host4: `198.${v4Second}.${i}.2/32`,
    v6: `fd00:${v4Second}:0:${(i + 1).toString(16)}::2/64`,
    gw6: `fd00:${v4Second}:0:${(i + 1).toString(16)}::1`,
  };
}

async function plumbWithLibrary(host: Netlink, i: number): Promise<void> {
  const p = plan(i, 18);
  const path = `/run/netns/${libNs(i)}`;
  const veth = `vl${i}`;
  await host.link.createVeth({ name: veth, mtu: 1450, peer: { name: 'eth0', mtu: 1450, netns: path } });
  await host.link.setUp(veth);
  await host.route.add({ dst: p.host4, dev: veth });
  const c = await host.at(path);
  try {
    await c.link.setUp('lo');
    await c.link.setUp('eth0');
    await c.address.add('eth0', p.v4);
    await c.address.add('eth0', p.v6, { noDad: true });
    await c.route.add({ dst: 'default', via: p.gw4 });
    await c.route.add({ dst: 'default', via: p.gw6 });
  } finally {
    await c.close();
  }
}

async function plumbWithIproute2(i: number): Promise<void> {
  const p = plan(i, 19);
  const ns = ipNs(i);
  const veth = `vi${i}`;
  const cmds: string[][] = [
    ['-n', hostNs, 'link', 'add', veth, 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1450', 'netns', ns],
    ['-n', hostNs, 'link', 'set', veth, 'up'],
    ['-n', hostNs, 'route', 'add', p.host4, 'dev', veth],
    ['-n', ns, 'link', 'set', 'lo', 'up'],
    ['-n', ns, 'link', 'set', 'eth0', 'up'],
    ['-n', ns, 'addr', 'add', p.v4, 'dev', 'eth0'],
    ['-n', ns, 'addr', 'add', p.v6, 'dev', 'eth0', 'nodad'],
    ['-n', ns, 'route', 'add', 'default', 'via', p.gw4],
    ['-n', ns, '-6', 'route', 'add', 'default', 'via', p.gw6],
  ];
  for (const args of cmds) await run('ip', args);
}

/** Checks with `ip -json` that container i ended up plumbed (outside the timed part). */
function verify(ns: string, i: number, v4Second: 18 | 19): void {
  const p = plan(i, v4Second);
  const addrs = JSON.parse(execFileSync('ip', ['-n', ns, '-json', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' })) as Array<{
    mtu: number; flags: string[]; addr_info: Array<{ local: string; prefixlen: number }>;
  }>;
  const got = new Set(addrs[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
  const routes = execFileSync('ip', ['-n', ns, 'route', 'show', 'default'], { encoding: 'utf8' })
    + execFileSync('ip', ['-n', ns, '-6', 'route', 'show', 'default'], { encoding: 'utf8' });
  const ok = addrs[0]?.mtu === 1450 && addrs[0].flags.includes('UP') && got.has(p.v4) && got.has(p.v6)
    && routes.includes(`via ${p.gw4}`) && routes.includes(`via ${p.gw6}`);
  if (!ok) throw new Error(`container ${ns} is not plumbed as expected: ${JSON.stringify(addrs)} ${routes}`);
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

async function main(): Promise<void> {
  process.on('SIGINT', () => { cleanup(); process.exit(130); });
  console.error(`creating ${2 * N + 1} namespaces...`);
  addNamespaces([hostNs, ...Array.from({ length: N }, (_, i) => libNs(i)), ...Array.from({ length: N }, (_, i) => ipNs(i))]);

  const host = await Netlink.open({ netns: `/run/netns/${hostNs}` });
  const perContainer: number[] = [];
  let libTotal: number;
  try {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      await plumbWithLibrary(host, i);
      perContainer.push(performance.now() - t);
    }
    libTotal = performance.now() - t0;
  } finally {
    await host.close();
  }
  console.error(`library:   ${N} containers in ${libTotal.toFixed(0)} ms`);

  const t1 = performance.now();
  for (let i = 0; i < N; i++) await plumbWithIproute2(i);
  const ipTotal = performance.now() - t1;
  console.error(`iproute2:  ${N} containers in ${ipTotal.toFixed(0)} ms (9 ip processes each)`);

  console.error('verifying every container with ip -json...');
  for (let i = 0; i < N; i++) {
    verify(libNs(i), i, 18);
    verify(ipNs(i), i, 19);
  }

  const sorted = [...perContainer].sort((a, b) => a - b);
  const p50 = percentile(sorted, 0.5);
  const p99 = percentile(sorted, 0.99);
  console.error('removing namespaces...');
  cleanup();
  console.log(`library total_ms=${libTotal.toFixed(1)} iproute2 total_ms=${ipTotal.toFixed(1)}`);
  console.log(`RESULT containers=${N} p50_ms=${p50.toFixed(2)} p99_ms=${p99.toFixed(2)} ratio_vs_iproute2=${(ipTotal / libTotal).toFixed(2)}`);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(cleanup);
