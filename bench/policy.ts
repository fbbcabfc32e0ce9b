// bench:policy: how fast a policy change is enforced on a loaded host, and what it costs.
// One real agent host (ovsdb-server + ovs-vswitchd in a netns, the harness's) with 200 local
// endpoints attached through the CNI plugin, in an isolated network that also has 2,000 endpoints
// on 20 registered remote hosts (created through the controller's API; no OVS for them), and
// 1,000 allow rules naming them by name, labels and CIDRs.
// Each change toggles one more rule, `probe-src -> probe-dst udp/9999`, and is verified with
// packets: probe-src sends a UDP datagram every 2 ms from a fresh source port (a new connection
// each time, so conntrack never lets one through as established), probe-dst reports what arrives.
// Add: time from the API call to the first datagram sent after it that arrives. Delete: time from
// the API call to just after the last datagram sent after it that still arrives (also after the
// agent acknowledged: OVS revalidates its cached datapath flows asynchronously; counted apart).
// Side by side, in the same run: the same 1,000 rules as an nftables ruleset (what a user writes
// instead, Docker-style), loaded into a scratch namespace, and one rule toggled 100 times with
// `nft -f` (timed to the command's return; no packet), and the flow budget Loom is held to.
// Last line: RESULT rules=1000 endpoints=2200 apply_p50_ms=... apply_p99_ms=... flows=... agent_rss_mb=...
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createUnderlay, startHost, startAgent, runCni, cniEnv, cniBinDir, run, waitFor, type Container } from '../test/harness/index.js';
import { startController } from '../test/harness/controller.js';
import { track, untrack } from '../test/harness/registry.js';
import type { CreatePolicyRequest } from '../src/api/types.js';

const LOCAL = 200;
const REMOTE_HOSTS = 20;
const REMOTE_PER_HOST = 100;
const RULES = 1000;
const CHANGES = Number(process.env.BENCH_CHANGES ?? 100);
const SEND_INTERVAL_S = 0.002;
const NET = 'bench';
const PROBE_PORT = 9999;

type PolicySpec = NonNullable<CreatePolicyRequest['policy']>;
const peer = (p: Partial<PolicySpec['from']>) => ({ endpoints: [], labels: {}, cidrs: [], ...p }) as NonNullable<PolicySpec['from']>;

const localName = (i: number) => `l${String(i).padStart(3, '0')}`;
const remoteName = (h: number, j: number) => `r${h}-${j}`;

/** The 1,000 rules: by endpoint names, by labels (with a port range), by source CIDRs. */
function ruleSet(): PolicySpec[] {
  const rules: PolicySpec[] = [];
  const remote = (k: number) => remoteName(Math.floor(k / REMOTE_PER_HOST) % REMOTE_HOSTS, k % REMOTE_PER_HOST);
  for (let i = 0; i < 500; i++) {
    rules.push({
      network: NET, name: `names-${i}`, protocol: 'PROTOCOL_TCP', ports: [{ first: 1000 + i, last: 0 }],
      from: peer({ endpoints: [remote(2 * i), remote(2 * i + 1)] }), to: peer({ endpoints: [localName(i % (LOCAL - 2))] }),
    });
  }
  for (let i = 500; i < 900; i++) {
    rules.push({
      network: NET, name: `labels-${i}`, protocol: 'PROTOCOL_TCP', ports: [{ first: 8000, last: 8080 }],
      from: peer({ labels: { app: `a${i % 40}` } }), to: peer({ labels: { tier: `t${i % 20}` } }),
    });
  }
  for (let i = 900; i < RULES; i++) {
    rules.push({
      network: NET, name: `cidr-${i}`, protocol: 'PROTOCOL_UDP', ports: [{ first: 53, last: 0 }],
      from: peer({ cidrs: [`198.51.100.${i - 900}/32`] }), to: peer({ labels: { tier: `t${i % 20}` } }),
    });
  }
  return rules;
}

/** The same rules as one nftables table, the way a Docker-style firewall would write them. */
function nftRuleset(rules: PolicySpec[], addressOf: Map<string, string>, labelsOf: Map<string, Record<string, string>>): string {
  const select = (p: PolicySpec['from']) => {
    const out = new Set<string>(p!.cidrs);
    for (const [name, addr] of addressOf) {
      const labels = labelsOf.get(name) ?? {};
      const byLabel = Object.keys(p!.labels).length > 0 && Object.entries(p!.labels).every(([k, v]) => labels[k] === v);
      if (p!.endpoints.includes(name) || byLabel) out.add(addr);
    }
    return [...out];
  };
  const lines = ['table inet benchpolicy {', '  chain forward {', '    type filter hook forward priority filter; policy drop;', '    ct state established,related accept', '    ct state invalid drop'];
  for (const r of rules) {
    const src = select(r.from);
    const dst = select(r.to);
    if (src.length === 0 || dst.length === 0) continue;
    const ports = r.ports!.map((p) => (p.last ? `${p.first}-${p.last}` : `${p.first}`)).join(', ');
    const proto = r.protocol === 'PROTOCOL_UDP' ? 'udp' : 'tcp';
    lines.push(`    ip saddr { ${src.join(', ')} } ip daddr { ${dst.join(', ')} } ${proto} dport { ${ports} } accept comment "${r.name}"`);
  }
  lines.push('  }', '}');
  return lines.join('\n') + '\n';
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const r1 = (x: number) => Math.round(x * 10) / 10;

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

const SENDER = `
import socket, sys, time
dst, port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sport = 1024
while True:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(('', sport))
        s.sendto(repr(time.time()).encode(), (dst, port))
    except OSError:
        pass
    s.close()
    sport = 1024 if sport >= 65535 else sport + 1
    time.sleep(interval)
`;
const RECEIVER = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('', int(sys.argv[1])))
print('ready', flush=True)
while True:
    data, addr = s.recvfrom(64)
    print(data.decode(), time.time(), flush=True)
`;

/** A process in a container's namespace (`ip netns exec` execs in place: the PID is python's). */
function inContainer(c: Container, script: string, args: string[]): ChildProcess {
  const proc = spawn('ip', ['netns', 'exec', c.netns, 'python3', '-c', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  track({ kind: 'pid', pid: proc.pid!, exe: 'python3' });
  return proc;
}
function stopProc(proc: ChildProcess): void {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  untrack({ kind: 'pid', pid: proc.pid!, exe: 'python3' });
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * Where each change's time went (with BENCH_AGENT_LOG=debug): controller commit and Watch to the
 * agent, the agent's phases (its `view change applied` log lines), the ack's way back, and the
 * packet check after the ack. Percentiles per phase, then the slowest changes in full.
 */
function phaseBreakdown(logs: string, timeline: Array<{ i: number; adding: boolean; start: number; committed: number; revision: number; ackSeen: number; apply: number }>): void {
  const applied: Array<{ revision: number; receivedAt: number; ms: Record<string, number> }> = [];
  for (const line of logs.split('\n')) {
    if (!line.includes('view change applied')) continue;
    try {
      applied.push(JSON.parse(line) as (typeof applied)[number]);
    } catch {
      // not a JSON line
    }
  }
  const rows: Array<{ i: number; adding: boolean; apply: number; phases: Record<string, number> }> = [];
  for (const c of timeline) {
    const a = applied.find((x) => x.revision >= c.revision && x.receivedAt >= c.start - 5);
    if (!a) continue;
    const done = a.receivedAt + a.ms.total!;
    rows.push({ i: c.i, adding: c.adding, apply: c.apply, phases: { api: c.committed - c.start, toAgent: a.receivedAt - c.committed, ...a.ms, ackToBench: c.ackSeen - done, packetAfterAck: c.start + c.apply - c.ackSeen } });
  }
  if (rows.length === 0) return;
  const names = Object.keys(rows[0]!.phases);
  // The agent's reads of the whole flow table (heartbeat drop counters), when they overlapped a change.
  const reads: Array<{ at: number; ms: number }> = [];
  for (const line of logs.split('\n')) {
    if (!line.includes('datapath counters read')) continue;
    try {
      reads.push(JSON.parse(line) as { at: number; ms: number });
    } catch {
      // not a JSON line
    }
  }
  for (const r of rows) {
    const c = timeline.find((t) => t.i === r.i)!;
    r.phases.counterReadMs = reads.filter((x) => x.at + x.ms >= c.start && x.at <= c.start + c.apply).reduce((a, x) => a + x.ms, 0);
  }
  names.push('counterReadMs');
  console.log(`phases (ms) over ${rows.length} changes:`);
  for (const n of names) {
    const xs = rows.map((r) => r.phases[n] ?? 0);
    console.log(`  ${n.padEnd(15)} p50 ${String(r1(pct(xs, 50))).padStart(7)}  p90 ${String(r1(pct(xs, 90))).padStart(7)}  max ${String(r1(Math.max(...xs))).padStart(7)}`);
  }
  for (const r of [...rows].sort((a, b) => b.apply - a.apply).slice(0, 4)) {
    console.log(`  slow: change ${r.i} (${r.adding ? 'add' : 'delete'}) ${r1(r.apply)} ms: ${names.map((n) => `${n} ${r1(r.phases[n] ?? 0)}`).join(', ')}`);
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  // Heartbeats as often as the controller's default (5 s); each carries drop counters read from the flow table.
  const ctl = await startController({ hostDownAfterMs: 3_600_000, heartbeatIntervalMs: 5000 });
  const underlay = await createUnderlay({ mtu: 1500 });
  const host = await startHost({ name: 'pb' });
  const cleanup: Array<() => Promise<unknown>> = [() => ctl.stop(), () => underlay.remove(), () => host.stop()];
  const senders: ChildProcess[] = [];
  try {
    await ctl.client.createNetwork({ name: NET, ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN', isolation: 'ISOLATION_ISOLATED' });
    await underlay.connect(host, '192.0.2.1/24', { ovsBridge: 'br-phy', mtu: 1500 });
    const agent = await startAgent(host, {
      controller: ctl.target, vtep: '192.0.2.1', logLevel: process.env.BENCH_AGENT_LOG ?? 'info',
      extraArgs: ['--underlay-bridge', 'br-phy', '--underlay-interface', 'ul0'],
    });
    cleanup.unshift(() => agent.stop());
    const cniBin = cniBinDir(host.dir);

    // 200 local endpoints through the CNI plugin, labelled tier=t0..t19; two of them are the probes.
    const addressOf = new Map<string, string>();
    const labelsOf = new Map<string, Record<string, string>>();
    const containers = new Map<string, Container>();
    const names = [...Array.from({ length: LOCAL - 2 }, (_, i) => localName(i)), 'probe-src', 'probe-dst'];
    await pool(names.map((n, i) => [n, i] as const), 4, async ([name, i]) => {
      const c = await host.addContainer(name, { empty: true });
      const conf = { cniVersion: '1.0.0', name: NET, type: 'loom', agentSocket: agent.socket };
      const r = await runCni(cniBin, 'ADD', conf, cniEnv(c, `id-${name}`, `K8S_POD_NAME=${name};LABELS=tier=t${i % 20}`));
      if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout}`);
      addressOf.set(name, (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]!);
      labelsOf.set(name, { tier: `t${i % 20}` });
      containers.set(name, c);
    });
    console.log(`${LOCAL} local endpoints attached (${r1((performance.now() - t0) / 1000)} s)`);

    // 2,000 endpoints on 20 registered hosts, labelled app=a0..a39.
    const remote: Array<[number, number]> = [];
    for (let h = 0; h < REMOTE_HOSTS; h++) {
      await ctl.client.register({ name: `remote${h}`, vtep: `192.0.2.${101 + h}`, agentVersion: 'bench', capabilities: [] });
      for (let j = 0; j < REMOTE_PER_HOST; j++) remote.push([h, j]);
    }
    await pool(remote, 32, async ([h, j]) => {
      const name = remoteName(h, j);
      const labels = { app: `a${(h * REMOTE_PER_HOST + j) % 40}` };
      const ep = await ctl.client.createEndpoint({ network: NET, host: `remote${h}`, containerId: `id-${name}`, name, labels });
      addressOf.set(name, ep.ipv4);
      labelsOf.set(name, labels);
    });
    console.log(`${REMOTE_HOSTS * REMOTE_PER_HOST} remote endpoints created (${r1((performance.now() - t0) / 1000)} s)`);

    const rules = ruleSet();
    await pool(rules, 32, async (r) => void (await ctl.client.createPolicy(r)));
    // Wait for this host only: the registered remote hosts have no agent and never acknowledge.
    const applied = (what: string, timeoutMs: number) => {
      const rev = ctl.controller.revision();
      return waitFor(what, async () => ctl.convergence.appliedRevision(host.name) >= rev, timeoutMs, 1);
    };
    await applied('the agent to apply every rule', 300_000);
    console.log(`${RULES} rules created and applied (${r1((performance.now() - t0) / 1000)} s)`);

    // The probe: every datagram a new connection; the receiver prints "sent_at received_at".
    const src = containers.get('probe-src')!;
    const dst = containers.get('probe-dst')!;
    const receiver = inContainer(dst, RECEIVER, [String(PROBE_PORT)]);
    senders.push(receiver);
    const arrivals: number[] = [];
    let ready = false;
    createInterface({ input: receiver.stdout! }).on('line', (l) => {
      if (l === 'ready') ready = true;
      else arrivals.push(Number(l.split(' ')[0]) * 1000);
    });
    await waitFor('probe receiver', async () => ready, 10_000, 10);
    const sender = inContainer(src, SENDER, [addressOf.get('probe-dst')!, String(PROBE_PORT), String(SEND_INTERVAL_S)]);
    senders.push(sender);
    await new Promise((r) => setTimeout(r, 500));
    if (arrivals.length > 0) throw new Error('probe traffic passes before any rule allows it: the network is not isolated');

    const toggle: PolicySpec = {
      network: NET, name: 'bench-toggle', protocol: 'PROTOCOL_UDP', ports: [{ first: PROBE_PORT, last: 0 }],
      from: peer({ endpoints: ['probe-src'] }), to: peer({ endpoints: ['probe-dst'] }),
    };
    const adds: number[] = [];
    const deletes: number[] = [];
    /** Per change, for the phase breakdown (BENCH_AGENT_LOG=debug): when it started, its revision, when the bench saw the ack, what it measured. */
    const timeline: Array<{ i: number; adding: boolean; start: number; committed: number; revision: number; ackSeen: number; apply: number }> = [];
    /** Deletes whose last datagram passed after the agent acknowledged: by how much (ms). */
    const afterAck: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const adding = i % 2 === 0;
      const seen = arrivals.length;
      const start = Date.now();
      if (adding) await ctl.client.createPolicy(toggle);
      else await ctl.client.deletePolicy(NET, toggle.name!);
      const committed = Date.now();
      const revision = ctl.controller.revision();
      await applied(`change ${i} applied`, 60_000);
      const ackSeen = Date.now();
      if (adding) {
        await waitFor(`a probe datagram through after change ${i}`, async () => arrivals.slice(seen).some((t) => t >= start), 10_000, 2);
        const first = Math.min(...arrivals.slice(seen).filter((t) => t >= start));
        adds.push(first - start);
      } else {
        // Acknowledged: the flow table no longer allows it. The datapath's cached megaflows are
        // revalidated by OVS asynchronously, so wait until nothing sent has passed for 300 ms.
        const ackedAt = Date.now();
        const lastPass = () => Math.max(start, ...arrivals.slice(seen).filter((t) => t >= start));
        await waitFor(`probe datagrams to stop after change ${i}`, async () => Date.now() - Math.max(ackedAt, lastPass()) > 300, 20_000, 10);
        const last = lastPass();
        deletes.push(last > start ? last - start + SEND_INTERVAL_S * 1000 : 0);
        if (last > ackedAt) afterAck.push(last - ackedAt);
      }
      timeline.push({ i, adding, start, committed, revision, ackSeen, apply: adding ? adds.at(-1)! : deletes.at(-1)! });
      if ((i + 1) % 20 === 0) console.log(`  ${i + 1} changes: last add ${r1(adds.at(-1)!)} ms, last delete ${r1(deletes.at(-1) ?? 0)} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const apply = [...adds, ...deletes];
    const flowLines = (await host.ofctl('dump-aggregate', 'br-int')).match(/flow_count=(\d+)/);
    const flows = Number(flowLines?.[1] ?? NaN);
    const policyFlows = (await host.ofctl('dump-flows', 'br-int', 'table=40')).split('\n').filter((l) => l.includes('table=40')).length;
    const rss = rssMb(agent.pid!);
    const named = new Set(rules.flatMap((r) => [...addressOf.keys()].filter((n) => n.startsWith('r') && (r.from!.endpoints.includes(n) || (Object.keys(r.from!.labels).length > 0 && Object.entries(r.from!.labels).every(([k, v]) => labelsOf.get(n)?.[k] === v))))));
    const budget = 10 * (RULES + LOCAL + named.size);
    console.log(`loom:  add    p50 ${r1(pct(adds, 50))} ms  p99 ${r1(pct(adds, 99))} ms  max ${r1(Math.max(...adds))} ms (${adds.length} changes)`);
    console.log(`loom:  delete p50 ${r1(pct(deletes, 50))} ms  p99 ${r1(pct(deletes, 99))} ms  max ${r1(Math.max(...deletes))} ms (${deletes.length} changes)`);
    console.log(`loom:  ${afterAck.length} of ${deletes.length} deletes still passed datagrams after the agent acknowledged (OVS revalidating cached datapath flows)${afterAck.length ? `: up to ${r1(Math.max(...afterAck))} ms later` : ''}`);
    console.log(`loom:  flows ${flows} on br-int (${policyFlows} in table 40); budget 10 x (${RULES} rules + ${LOCAL} local + ${named.size} remote named) = ${budget}: ${flows <= budget ? 'met' : 'NOT met'}`);
    console.log(`loom:  agent RSS ${r1(rss)} MB (Node.js under tsx)`);
    if (process.env.BENCH_AGENT_LOG === 'debug') phaseBreakdown(agent.logs, timeline);
    stopProc(sender);
    stopProc(receiver);

    // Side by side: the same rule set in nftables, one rule toggled with `nft -f`.
    const ruleset = nftRuleset(rules, addressOf, labelsOf);
    const ns = `pbnft${process.pid}`;
    track({ kind: 'netns', name: ns });
    cleanup.push(async () => {
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
      untrack({ kind: 'netns', name: ns });
    });
    await run('ip', ['netns', 'add', ns]);
    const nft = (script: string) => run('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: script });
    let t = performance.now();
    await nft(ruleset);
    const loadMs = performance.now() - t;
    const nftRules = ruleset.split('\n').filter((l) => l.includes(' accept comment ')).length;
    const toggleRule = `ip saddr ${addressOf.get('probe-src')} ip daddr ${addressOf.get('probe-dst')} udp dport ${PROBE_PORT} accept comment "bench-toggle"`;
    const nftTimes: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      t = performance.now();
      if (i % 2 === 0) await nft(`add rule inet benchpolicy forward ${toggleRule}\n`);
      else {
        const listing = await run('ip', ['netns', 'exec', ns, 'nft', '-a', 'list', 'chain', 'inet', 'benchpolicy', 'forward']);
        const handle = /"bench-toggle" # handle (\d+)/.exec(listing)?.[1];
        await nft(`delete rule inet benchpolicy forward handle ${handle}\n`);
      }
      nftTimes.push(performance.now() - t);
    }
    console.log(`nft:   ${nftRules} rules (${ruleset.length} bytes) loaded in ${r1(loadMs)} ms; one rule toggled: p50 ${r1(pct(nftTimes, 50))} ms p99 ${r1(pct(nftTimes, 99))} ms (command return, deletes include the handle lookup; no packet check)`);
    console.log(
      `RESULT rules=${RULES} endpoints=${LOCAL + REMOTE_HOSTS * REMOTE_PER_HOST} apply_p50_ms=${r1(pct(apply, 50))} apply_p99_ms=${r1(pct(apply, 99))} ` +
        `flows=${flows} flow_budget=${budget} agent_rss_mb=${r1(rss)} nft_apply_p50_ms=${r1(pct(nftTimes, 50))} nft_apply_p99_ms=${r1(pct(nftTimes, 99))}`,
    );
  } finally {
    for (const p of senders) stopProc(p);
    for (const c of cleanup) await c().catch(() => undefined);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
