// A Loom cluster on simulated hosts: an underlay, N hosts each with OVS (underlay on br-phy) and a
// loom-agent, tunnel neighbours seeded so no first packet is lost, and the CNI plugin binary.
import { createUnderlay, type Underlay } from './underlay.js';
import { LOOM_VSWITCHD_ARGS, startHost, type SimHost } from './host.js';
import { startAgent, cniBinDir, cniEnv, runCni, type AgentProcess } from './loom.js';
import type { Container } from './container.js';

export interface Cluster {
  underlay: Underlay;
  hosts: SimHost[];
  agents: AgentProcess[];
  /** Underlay (VTEP) address of each host, by host name. */
  vteps: Record<string, string>;
  /** CNI_PATH directory with the `loom` plugin. */
  cniBin: string;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  hosts: string[];
  controller: string;
  underlayMtu?: number;
  built?: boolean;
  /** More loom-agent flags for every host. */
  agentArgs?: string[];
  /** Runs on each host once its OVS is up, before its agent starts (e.g. Open_vSwitch other_config). */
  prepareHost?: (host: SimHost, index: number) => Promise<void>;
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const underlay = await createUnderlay({ mtu: opts.underlayMtu ?? 1500 });
  const hosts: SimHost[] = [];
  const agents: AgentProcess[] = [];
  const vteps: Record<string, string> = {};
  const stop = async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    for (const h of hosts) await h.stop().catch(() => undefined);
    await underlay.remove();
  };
  try {
    for (const [i, name] of opts.hosts.entries()) {
      const host = await startHost({ name, vswitchdArgs: LOOM_VSWITCHD_ARGS });
      hosts.push(host);
      await opts.prepareHost?.(host, i);
      vteps[name] = `192.0.2.${i + 1}`;
      await underlay.connect(host, `${vteps[name]}/24`, { ovsBridge: 'br-phy', mtu: opts.underlayMtu ?? 1500 });
    }
    await seedTunnelNeighbours(hosts, vteps);
    for (const host of hosts) {
      agents.push(
        await startAgent(host, {
          controller: opts.controller,
          vtep: vteps[host.name]!,
          underlayMtu: opts.underlayMtu ?? 1500,
          built: opts.built ?? false,
          extraArgs: ['--underlay-bridge', 'br-phy', '--underlay-interface', 'ul0', ...(opts.agentArgs ?? [])],
        }),
      );
    }
    return { underlay, hosts, agents, vteps, cniBin: cniBinDir(hosts[0]!.dir), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The userspace datapath drops the first packets to a tunnel peer while it resolves the peer's
 * MAC; tell every host every other host's underlay MAC up front instead.
 */
export async function seedTunnelNeighbours(hosts: SimHost[], vteps: Record<string, string>): Promise<void> {
  const macs = new Map<string, string>();
  for (const h of hosts) macs.set(h.name, (await h.exec('cat', ['/sys/class/net/br-phy/address'])).trim());
  for (const h of hosts) {
    for (const peer of hosts) {
      if (peer !== h) await h.appctl('tnl/arp/set', 'br-phy', vteps[peer.name]!, macs.get(peer.name)!);
    }
  }
}

/** A container attached through the CNI plugin to `network` on host `host`; throws on a CNI error. */
export async function attachContainer(cluster: Cluster, host: number, name: string, network = 'blue'): Promise<{ c: Container; ipv4: string }> {
  const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
  const conf = { cniVersion: '1.0.0', name: network, type: 'loom', agentSocket: cluster.agents[host]!.socket };
  const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, name));
  if (r.code !== 0) throw new Error(`CNI ADD of ${name} on host ${host} failed (${r.code}): ${r.stdout}`);
  return { c, ipv4: (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]! };
}
