// Loom's demo: a controller, three simulated hosts (each a network namespace with its own Open
// vSwitch and loom-agent) on a shared underlay, two dual-stack networks (VXLAN and GRE), and
// containers attached through the `loom` CNI plugin. `up` builds it and leaves it running;
// `down` removes all of it. Run through scripts/demo.sh, which installs what it needs first.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { keepResources } from '../test/harness/registry.js';
import { startCluster, runCni, cniEnv, run, waitFor, alive, createOutside, startEchoServer, stopEchoServer, type Container } from '../test/harness/index.js';
import { LoomClient } from '../src/api/client.js';
import type { TraceResponse } from '../src/api/types.js';

const ROOT = resolve(import.meta.dirname, '..');
const DEMO_DIR = '/tmp/loom-demo';
const STATE = join(DEMO_DIR, 'state.json');
const CONTROLLER = '127.0.0.1:7400';
/** "The outside": a machine on the underlay that is no Loom host (TEST-NET-1, like the underlay). */
const OUTSIDE = '192.0.2.100';
const ECHO_PORT = 7000;

interface DemoState {
  controllerPid: number;
  pids: Array<{ pid: number; exe: string }>;
  namespaces: string[];
  containers: Array<{ name: string; host: string; network: string; netns: string; ipv4: string; ipv6: string }>;
}

const started = Date.now();
const step = (msg: string) => process.stdout.write(`==> ${msg} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);

async function up(): Promise<void> {
  if (existsSync(STATE)) {
    const s = JSON.parse(readFileSync(STATE, 'utf8')) as DemoState;
    if (alive(s.controllerPid)) {
      console.log(`The demo is already running (state in ${STATE}). Remove it first: bash scripts/demo.sh down`);
      process.exit(1);
    }
    await down();
  }
  mkdirSync(DEMO_DIR, { recursive: true });
  keepResources(DEMO_DIR);
  const state: DemoState = { controllerPid: 0, pids: [], namespaces: [], containers: [] };
  const save = () => writeFileSync(STATE, JSON.stringify(state, null, 2));

  step(`starting loom-controller on ${CONTROLLER} (SQLite store in ${DEMO_DIR})`);
  const log = join(DEMO_DIR, 'controller.log');
  const fd = openSync(log, 'a');
  const ctl = spawn(join(ROOT, 'bin/loom-controller'), ['--listen', CONTROLLER, '--metrics-listen', '127.0.0.1:7401', '--db', join(DEMO_DIR, 'controller.db'), '--host-down-after-ms', '5000', '--heartbeat-interval-ms', '1000'], { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  ctl.unref();
  state.controllerPid = ctl.pid!;
  state.pids.push({ pid: ctl.pid!, exe: 'node' });
  save();
  await waitFor(`the controller (see ${log})`, () => readFileSync(log, 'utf8').includes('loom-controller ready'), 30_000, 100);
  const client = new LoomClient(CONTROLLER);
  await client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', ipv6Cidr: 'fd00:b::/64', tunnelType: 'TUNNEL_TYPE_VXLAN', vni: 5001 });
  await client.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16', ipv6Cidr: 'fd00:c::/64', tunnelType: 'TUNNEL_TYPE_GRE', vni: 5002 });

  step('starting three hosts: namespaces, ovsdb-server, ovs-vswitchd (userspace datapath), underlay, loom-agent');
  const cluster = await startCluster({ hosts: ['host1', 'host2', 'host3'], controller: CONTROLLER, built: true, agentArgs: ['--nat-path', 'ovs'] });
  state.namespaces.push(cluster.underlay.netns);
  for (const [i, h] of cluster.hosts.entries()) {
    state.namespaces.push(h.netns);
    state.pids.push({ pid: cluster.agents[i]!.pid!, exe: 'node' }, { pid: h.vswitchdPid!, exe: 'ovs-vswitchd' }, { pid: h.ovsdbPid!, exe: 'ovsdb-server' });
  }
  save();

  step('attaching containers through the loom CNI plugin');
  const layout: Array<[string, number, 'blue' | 'red']> = [
    ['web1', 0, 'blue'], ['web2', 1, 'blue'], ['web3', 2, 'blue'],
    ['db1', 0, 'red'], ['db2', 1, 'red'], ['db3', 2, 'red'],
  ];
  const containers = new Map<string, { c: Container; network: string; ipv4: string; ipv6: string }>();
  for (const [name, hostIndex, network] of layout) {
    const host = cluster.hosts[hostIndex]!;
    const c = await host.addContainer(name, { empty: true });
    state.namespaces.push(c.netns);
    save();
    const conf = { cniVersion: '1.0.0', name: network, type: 'loom', agentSocket: cluster.agents[hostIndex]!.socket };
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, `demo-${name}`, `K8S_POD_NAME=${name}`));
    if (r.code !== 0) throw new Error(`CNI ADD for ${name} failed: ${r.stdout}`);
    const result = r.json as { ips: Array<{ address: string }>; dns?: { nameservers?: string[]; search?: string[] } };
    const ips = result.ips.map((i) => i.address.split('/')[0]!);
    // What podman does with the result's dns: the container's resolv.conf (`ip netns exec` mounts it).
    const etc = `/etc/netns/${c.netns}`;
    mkdirSync(etc, { recursive: true });
    const dns = result.dns ?? {};
    writeFileSync(join(etc, 'resolv.conf'), [...(dns.nameservers ?? []).map((n) => `nameserver ${n}`), ...(dns.search?.length ? [`search ${dns.search.join(' ')}`] : [])].join('\n') + '\n');
    containers.set(name, { c, network, ipv4: ips[0]!, ipv6: ips[1] ?? '' });
    state.containers.push({ name, host: host.name, network, netns: c.netns, ipv4: ips[0]!, ipv6: ips[1] ?? '' });
    save();
  }
  const { revision } = await client.getStatus();
  await client.wait(revision, 15_000);

  step('measuring the cross-host ping matrix');
  console.log('\nHosts');
  for (const h of (await client.listHosts()).hosts) console.log(`  ${h.name.padEnd(8)} VTEP ${h.vtep.padEnd(12)} ${h.up ? 'up' : 'DOWN'}  agent ${h.agentVersion}`);
  console.log('\nTunnel ports (flow-based: one port per tunnel type, the key and remote come from the flow)');
  for (const h of cluster.hosts) {
    for (const type of ['vxlan', 'gre']) {
      const row = await h.vsctl('--format=csv', '--no-headings', '--columns=name,ofport,options', 'find', 'interface', `type=${type}`);
      console.log(`  ${h.name.padEnd(8)} ${type.padEnd(6)} ${row.trim().replaceAll('"', '')}`);
    }
  }
  console.log('\nEndpoints');
  for (const e of state.containers) console.log(`  ${e.name.padEnd(6)} ${e.network.padEnd(5)} on ${e.host.padEnd(6)} ${e.ipv4.padEnd(14)} ${e.ipv6}`);
  console.log('\nPing matrix, IPv4 (average RTT over 3 pings; networks are isolated, so cross-network pairs must fail)');
  const names = [...containers.keys()];
  console.log(`  ${'from\\to'.padEnd(7)}${names.map((n) => n.padStart(11)).join('')}`);
  // Every pair at once: a blocked pair waits for its timeout, so one after the other is slow.
  const cell = async (from: string, to: string): Promise<string> => {
    if (from === to) return '-';
    const src = containers.get(from)!;
    const dst = containers.get(to)!;
    const out = await src.c.exec('ping', ['-c', '3', '-i', '0.2', '-W', '1', dst.ipv4]).catch(() => '');
    const rtt = /= [\d.]+\/([\d.]+)\//.exec(out)?.[1];
    const same = src.network === dst.network;
    return rtt ? `${Number(rtt).toFixed(2)}ms${same ? '' : ' LEAK'}` : same ? 'FAIL' : 'isolated';
  };
  const rows = await Promise.all(names.map((from) => Promise.all(names.map((to) => cell(from, to)))));
  rows.forEach((cells, i) => console.log(`  ${names[i]!.padEnd(7)}${cells.map((c) => c.padStart(11)).join('')}`));
  console.log('\nNames (web1 asks its gateway, answered by the agent on its own host from the endpoint directory)');
  const web1 = containers.get('web1')!.c;
  for (const name of ['web2', 'web3.blue.loom', 'db2']) {
    const out = (await web1.exec('getent', ['ahostsv4', name]).catch(() => '')).split('\n')[0]?.split(/\s+/)[0];
    console.log(`  ${name.padEnd(16)} ${out || 'not found (another network\'s names do not exist for web1)'}`);
  }
  console.log('\nTrace (loomctl trace: the controller asks the agents of both hosts over their Watch streams)');
  const tunnelOf = (r: TraceResponse) => (r.tunnel ? `, ${r.tunnel.explanation}` : '');
  for (const [from, to] of [['web1', 'web2'], ['web1', 'db2']] as const) {
    const a = containers.get(from)!;
    const b = containers.get(to)!;
    const r = await client.trace({ from: `${a.network}/${from}`, to: `${b.network}/${to}` }).catch((e: Error) => e);
    if (r instanceof Error) console.log(`  ${from} -> ${to}: trace failed: ${r.message}`);
    else console.log(`  ${from} -> ${to}: ${r.verdict} at host ${r.host}, table ${r.table}${tunnelOf(r)}\n    ${r.explanation}`);
  }

  step('ways in and out: the host reaches containers, containers reach the outside, a published port');
  const outside = await createOutside(cluster.underlay, [`${OUTSIDE}/24`]);
  state.namespaces.push(outside.netns);
  save();
  const [host1, host2] = [cluster.hosts[0]!, cluster.hosts[1]!];
  const web = (n: string) => containers.get(n)!;
  console.log('\nHost path (loom-gw0: an OVS internal port holding an address of each network, from Loom\'s IPAM)');
  for (const to of ['web1', 'web2']) {
    const out = await host1.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', web(to).ipv4]).catch(() => '');
    const rtt = /= [\d.]+\/([\d.]+)\//.exec(out)?.[1];
    console.log(`  host1 -> ${to.padEnd(5)} ${web(to).ipv4.padEnd(14)} ${rtt ? `${Number(rtt).toFixed(2)}ms` : 'FAIL'}${to === 'web2' ? ' (on host2, over the tunnel)' : ''}`);
  }
  // Echo servers answer "peer <source address>": who the other side saw.
  const peerSeen = async (exec: (cmd: string, args: string[]) => Promise<string>, address: string, port: number) =>
    /^peer (\S+)/.exec(await exec('sh', ['-c', `echo hi | nc -w 1 -4 ${address} ${port} | head -n 1`]).catch(() => ''))?.[1];
  const echo = await startEchoServer(outside.netns, ECHO_PORT);
  // The first packet to a new destination takes the host's stack, which resolves its MAC; the
  // agent mirrors the neighbour into its next-hop table and new connections are NATed in OVS.
  await web('web1').c.exec('ping', ['-c', '1', '-W', '2', OUTSIDE]).catch(() => '');
  await waitFor('host1 to learn the outside\'s next hop', async () => (await host1.ofctl('dump-flows', host1.mgmtSocket('br-int'), 'table=62')).includes(`nw_dst=${OUTSIDE} `), 10_000, 100).catch(() => undefined);
  console.log(`\nEgress (--nat-path ovs: source translated to the host's address in OVS conntrack, out through the patch port to br-phy)`);
  for (const from of ['web1', 'db2']) {
    const seen = await peerSeen((cmd, args) => web(from).c.exec(cmd, args), OUTSIDE, ECHO_PORT);
    const host = state.containers.find((e) => e.name === from)!.host;
    console.log(`  ${from.padEnd(5)} (${web(from).ipv4}, on ${host}) -> ${OUTSIDE}:${ECHO_PORT}: the outside sees ${seen ?? 'nothing (FAIL)'}${seen === cluster.vteps[host] ? ` = ${host}'s address` : ''}`);
  }
  const zone = (await host1.appctl('dpctl/dump-conntrack', 'zone=65534').catch(() => '')).split('\n').filter((l) => l.includes(`dst=${OUTSIDE}`));
  if (zone[0]) console.log(`  host1's OVS NAT zone: ${zone[0].trim()}`);
  await stopEchoServer(echo);

  const www = await host2.addContainer('www', { empty: true });
  state.namespaces.push(www.netns);
  save();
  const mapping = { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' };
  const conf = { cniVersion: '1.0.0', name: 'blue', type: 'loom', agentSocket: cluster.agents[1]!.socket, capabilities: { portMappings: true }, runtimeConfig: { portMappings: [mapping] } };
  const added = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(www, 'demo-www', 'K8S_POD_NAME=www'));
  if (added.code !== 0) throw new Error(`CNI ADD for www failed: ${added.stdout}`);
  const wwwIp = (added.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]!;
  state.containers.push({ name: 'www', host: host2.name, network: 'blue', netns: www.netns, ipv4: wwwIp, ipv6: '' });
  save();
  const server = await startEchoServer(www.netns, 80);
  const host2Address = cluster.vteps[host2.name]!;
  const inbound = await peerSeen((cmd, args) => outside.exec(cmd, args), host2Address, 8080);
  console.log(`\nPublished port (podman -p 8080:80: runtimeConfig.portMappings, DNAT in OVS conntrack on host2)`);
  console.log(`  outside ${OUTSIDE} -> ${host2Address}:8080 -> www ${wwwIp}:80 on host2: ${inbound ? `answered; www saw the client as ${inbound}` : 'FAIL'}`);
  await stopEchoServer(server);

  client.close();
  console.log(`
The topology keeps running. Try:
  ip netns exec ${state.containers[0]!.netns} ping ${state.containers[1]!.ipv6}      # enter web1 (on host1), ping web2 over IPv6
  ip netns exec ${state.containers[0]!.netns} bash                              # a shell inside web1
  ip netns exec ${state.containers[0]!.netns} getent hosts web3                  # names across hosts
  bin/loomctl status                                                     # hosts, applied revisions, lag, drops
  bin/loomctl trace blue/web1 blue/web2 --live                           # table by table on both hosts, a real marked packet
  bin/loomctl endpoint list --output json                                # www's published port too
  bin/loomctl network list                                               # egress mode and address per network
  ip netns exec ${state.containers.at(-1)!.netns} nc -l 80 &                             # a server in www again, then type a line from the outside:
  ip netns exec ${outside.netns} nc ${cluster.vteps[host2.name]} 8080
  OVS_RUNDIR=${cluster.hosts[0]!.dir} ovs-ofctl -O OpenFlow13 dump-flows br-int   # host1's pipeline
  Logs: ${DEMO_DIR}/controller.log, ${cluster.hosts[0]!.dir}/agent.log
Remove everything: bash scripts/demo.sh down`);
}

async function down(): Promise<void> {
  if (!existsSync(STATE)) {
    console.log('No demo is running.');
    rmSync(DEMO_DIR, { recursive: true, force: true });
    return;
  }
  const state = JSON.parse(readFileSync(STATE, 'utf8')) as DemoState;
  // OVS daemons someone restarted by hand have new PIDs: their pidfiles know them.
  for (const dir of readdirSync(DEMO_DIR, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const exe of ['ovs-vswitchd', 'ovsdb-server']) {
      const file = join(DEMO_DIR, dir.name, `${exe}.pid`);
      const pid = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
      if (Number.isInteger(pid) && !state.pids.some((p) => p.pid === pid)) state.pids.push({ pid, exe });
    }
  }
  for (const { pid, exe } of state.pids) {
    // Only a process that is still the one we started (PIDs can be reused).
    const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
    if (alive(pid) && cmdline.split('\0').some((a) => a.endsWith(exe))) process.kill(pid, 'SIGTERM');
  }
  await waitFor('demo processes to stop', () => state.pids.every((p) => !alive(p.pid)), 15_000, 100).catch(() => {
    for (const p of state.pids) if (alive(p.pid)) process.kill(p.pid, 'SIGKILL');
  });
  for (const ns of [...state.namespaces].reverse()) {
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  rmSync(DEMO_DIR, { recursive: true, force: true });
  console.log(`Removed the demo: ${state.pids.length} processes, ${state.namespaces.length} namespaces.`);
}

const command = process.argv[2] ?? 'up';
if (command !== 'up' && command !== 'down') {
  console.error('usage: bash scripts/demo.sh [up|down]');
  process.exit(2);
}
(command === 'up' ? up() : down()).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`demo failed: ${(err as Error).message}\nPartial state is in ${STATE}; remove it with: bash scripts/demo.sh down`);
    process.exit(1);
  },
);
