// A hand-built sketch of the design docs/architecture.md describes as the next step for the
// userspace datapath (not what Loom does): egress SNAT and published-port DNAT in OVS's own
// conntrack (`ct(nat)`), leaving br-int through a patch port straight into br-phy, so a packet to or
// from the outside crosses the userspace datapath once instead of twice (no loom-gw0 tap, no
// host-stack forwarding, no br-phy tap). bench:egress measures it beside the real paths when
// BENCH_OVS_NAT_SKETCH=1, to show what the design is worth before anyone builds it.
//
// Only what the bench's one container, one published port and one outside address need: the
// next hop's MAC is read by hand, SNAT uses a port range the host's kernel does not pick for its
// own connections, and the flows carry their own cookie so they can be removed again.
import type { Container, SimHost } from '../test/harness/index.js';

export const SKETCH_COOKIE = '0x5a4e';
const PATCH_INT = 'lsk-int-phy';
const PATCH_PHY = 'lsk-phy-int';
const PATCH_INT_OFPORT = 60001;
const PATCH_PHY_OFPORT = 60002;
/** 61440-65535 (one masked match): above Linux's default ip_local_port_range 32768-60999. */
const SNAT_PORTS = { low: 61440, high: 65535, match: '0xf000/0xf000' };
const ZONE = 7000;

type Runner = { exec(cmd: string, args?: readonly string[]): Promise<string> };

async function mac(where: Runner, dev: string): Promise<string> {
  const [link] = JSON.parse(await where.exec('ip', ['-j', 'link', 'show', dev])) as Array<{ address: string }>;
  if (!link) throw new Error(`no link ${dev}`);
  return link.address;
}

export interface SketchTopology {
  host: SimHost;
  vtep: string;
  container: Container;
  containerIp: string;
  outside: Runner;
  outsideIp: string;
  publishedPort: number;
}

/** Adds the patch ports and the flows; returns a function that removes them again. */
export async function installOvsNatSketch(t: SketchTopology): Promise<() => Promise<void>> {
  const { host } = t;
  const endpointPort = (await host.vsctl('list-ports', 'br-int')).split('\n').find((p) => p.startsWith('lm'));
  if (!endpointPort) throw new Error('no endpoint port on br-int');
  const [hostMac, outsideMac, containerMac] = await Promise.all([mac(host, 'br-phy'), mac(t.outside, 'eth0'), mac(t.container, 'eth0')]);
  const [gw] = JSON.parse(await t.container.exec('ip', ['-j', 'neigh', 'show', 'dev', 'eth0', 'nud', 'permanent'])) as Array<{ lladdr: string }>;
  if (!gw) throw new Error('the container has no permanent gateway neighbour');
  await host.vsctl(
    '--', '--may-exist', 'add-port', 'br-int', PATCH_INT, '--', 'set', 'interface', PATCH_INT, 'type=patch', `options:peer=${PATCH_PHY}`, `ofport_request=${PATCH_INT_OFPORT}`,
    '--', '--may-exist', 'add-port', 'br-phy', PATCH_PHY, '--', 'set', 'interface', PATCH_PHY, 'type=patch', `options:peer=${PATCH_INT}`, `ofport_request=${PATCH_PHY_OFPORT}`,
  );
  const toWire = `set_field:${hostMac}->eth_src,set_field:${outsideMac}->eth_dst,output:${PATCH_INT_OFPORT}`;
  const intFlows = [
    // The container's packets to the outside: SNAT (new) or translated by the lookup (established, replies of the published port).
    `table=0,priority=1000,ip,in_port=${endpointPort},nw_dst=${t.outsideIp},actions=ct(table=200,zone=${ZONE},nat)`,
    `table=200,priority=10,ct_state=+new+trk,ip,actions=ct(commit,zone=${ZONE},nat(src=${t.vtep}:${SNAT_PORTS.low}-${SNAT_PORTS.high})),${toWire}`,
    `table=200,priority=10,ct_state=+est+trk,ip,actions=${toWire}`,
    // From br-phy, already translated back: to the container.
    `table=0,priority=1000,ip,in_port=${PATCH_INT_OFPORT},nw_dst=${t.containerIp},actions=set_field:${gw.lladdr}->eth_src,set_field:${containerMac}->eth_dst,output:${endpointPort}`,
  ];
  const phyFlows = [
    // Replies to SNATed connections: only the sketch's port range, everything else stays NORMAL (the host's own traffic, tunnels).
    `table=0,priority=1000,tcp,in_port=ul0,nw_dst=${t.vtep},tp_dst=${SNAT_PORTS.match},actions=ct(table=1,zone=${ZONE},nat)`,
    `table=1,priority=10,ct_state=+est+trk,ip,actions=output:${PATCH_PHY_OFPORT}`,
    'table=1,priority=0,actions=NORMAL',
    // The published port: DNAT to the container.
    `table=0,priority=1000,tcp,in_port=ul0,nw_dst=${t.vtep},tp_dst=${t.publishedPort},actions=ct(table=2,zone=${ZONE},nat)`,
    `table=2,priority=10,ct_state=+new+trk,tcp,actions=ct(commit,zone=${ZONE},nat(dst=${t.containerIp}:${t.publishedPort})),output:${PATCH_PHY_OFPORT}`,
    `table=2,priority=10,ct_state=+est+trk,tcp,actions=output:${PATCH_PHY_OFPORT}`,
    'table=2,priority=0,actions=NORMAL',
  ];
  for (const f of intFlows) await host.ofctl('add-flow', host.mgmtSocket('br-int'), `cookie=${SKETCH_COOKIE},${f}`);
  for (const f of phyFlows) await host.ofctl('add-flow', host.mgmtSocket('br-phy'), `cookie=${SKETCH_COOKIE},${f}`);
  return async () => {
    for (const bridge of ['br-int', 'br-phy']) await host.ofctl('del-flows', host.mgmtSocket(bridge), `cookie=${SKETCH_COOKIE}/-1`);
    await host.vsctl('--', '--if-exists', 'del-port', PATCH_INT, '--', '--if-exists', 'del-port', PATCH_PHY);
  };
}

/** Packets the sketch's flows in br-int carried (proof the measured traffic took them). */
export async function sketchPackets(host: SimHost): Promise<number> {
  const out = await host.ofctl('dump-flows', host.mgmtSocket('br-int'), `cookie=${SKETCH_COOKIE}/-1,table=0`);
  return [...out.matchAll(/n_packets=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}
