// The host's firewall state Loom needs, all in its own nftables table `inet loom` (the operator's
// tables and chains are never read or written): egress masquerade, published ports (DNAT), their
// source limits, and isolation (the host never forwards between Loom networks). The ruleset is
// rendered from the agent's view (a pure function) and replaced in one `nft -f` transaction, so
// a rule set is never half applied; conntrack entries (NAT bindings of open connections) live in
// the kernel and survive the replacement, and an agent restart, untouched.
import { spawn } from 'node:child_process';

export const TABLE = 'loom';

export interface FirewallNetwork {
  name: string;
  ipv4Cidr: string;
  ipv6Cidr: string;
  /** The host's gateway-port addresses in the network. */
  hostAddress4: string;
  hostAddress6: string;
  egress: boolean;
  ipv6Routed: boolean;
  /** Sources allowed in (published ports, routed IPv6); empty: any. */
  inboundSources: string[];
}

export interface PublishedPort {
  network: string;
  endpoint: string;
  containerIpv4: string;
  containerIpv6: string;
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIp: string;
}

export interface FirewallState {
  gatewayPort: string;
  networks: FirewallNetwork[];
  ports: PublishedPort[];
}

const v6 = (a: string) => a.includes(':');
const set = (items: string[]) => (items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`);
const q = (s: string) => JSON.stringify(s);

/** Whether a source limit admits any address of this family, and the match that expresses it. */
function sourceMatch(net: FirewallNetwork, family: 4 | 6): string | null {
  if (net.inboundSources.length === 0) return '';
  const own = net.inboundSources.filter((c) => v6(c) === (family === 6));
  if (own.length === 0) return null;
  return `${family === 4 ? 'ip' : 'ip6'} saddr ${set(own)} `;
}

function dnatRules(p: PublishedPort, net: FirewallNetwork | undefined, withSources: boolean): string[] {
  const out: string[] = [];
  for (const family of [4, 6] as const) {
    const target = family === 4 ? p.containerIpv4 : p.containerIpv6;
    if (!target) continue;
    if (p.hostIp && v6(p.hostIp) !== (family === 6)) continue;
    const src = withSources && net ? sourceMatch(net, family) : '';
    if (src === null) continue; // no source of this family may come in
    const ipKw = family === 4 ? 'ip' : 'ip6';
    const dst = p.hostIp ? `${ipKw} daddr ${p.hostIp}` : `meta nfproto ${family === 4 ? 'ipv4' : 'ipv6'} fib daddr type local`;
    const to = family === 4 ? `${target}:${p.containerPort}` : `[${target}]:${p.containerPort}`;
    out.push(`${src}${dst} ${p.protocol} dport ${p.hostPort} dnat ${ipKw} to ${to} comment ${q(`${p.network}/${p.endpoint}`)}`);
  }
  return out;
}

/** The whole `table inet loom`, or null when the host serves no network (no table at all). */
export function renderRuleset(state: FirewallState): string | null {
  const nets = state.networks.filter((n) => n.hostAddress4 || n.hostAddress6);
  if (nets.length === 0 && state.ports.length === 0) return null;
  const gw = q(state.gatewayPort);
  const byName = new Map(nets.map((n) => [n.name, n]));
  const prerouting: string[] = [];
  const output: string[] = [];
  const postrouting: string[] = [];
  const input: string[] = [];
  const forward: string[] = [
    // Isolation: one Loom network never reaches another through the host.
    `iifname ${gw} oifname ${gw} drop`,
    `iifname ${gw} ct state established,related accept`,
    `oifname ${gw} ct state established,related accept`,
  ];
  for (const p of state.ports) {
    const net = byName.get(p.network);
    prerouting.push(...dnatRules(p, net, true));
    // The host itself (and a runtime's `-p 127.0.0.1:...`) reaches its published ports too.
    output.push(...dnatRules(p, net, false));
    // What a source limit did not translate reaches the host itself: it gets nothing there either.
    const dst = p.hostIp ? `${v6(p.hostIp) ? 'ip6' : 'ip'} daddr ${p.hostIp} ` : '';
    input.push(`iifname != ${gw} ${dst}${p.protocol} dport ${p.hostPort} drop`);
  }
  for (const n of nets) {
    const others = nets.filter((o) => o !== n).flatMap((o) => [o.hostAddress4, o.hostAddress6].filter(Boolean));
    for (const [family, cidr] of [[4, n.ipv4Cidr], [6, n.ipv6Cidr]] as const) {
      if (!cidr) continue;
      const ipKw = family === 4 ? 'ip' : 'ip6';
      const othersHere = others.filter((a) => v6(a) === (family === 6));
      // Nor another network's address of this host.
      if (othersHere.length > 0) input.push(`iifname ${gw} ${ipKw} saddr ${cidr} ${ipKw} daddr ${set(othersHere)} drop`);
      const routed = family === 6 && n.ipv6Routed;
      if (n.egress) {
        forward.push(`iifname ${gw} ${ipKw} saddr ${cidr} accept`);
        if (!routed) postrouting.push(`oifname != ${gw} ${ipKw} saddr ${cidr} masquerade`);
      }
      // Published ports (DNAT, sources checked there) and, for a routed IPv6 range, the range.
      const src = sourceMatch(n, family);
      if (src !== null) {
        forward.push(`oifname ${gw} ${ipKw} daddr ${cidr} ct status dnat ${src}accept`);
        if (routed) forward.push(`oifname ${gw} ${ipKw} daddr ${cidr} ${src}accept`);
      }
      // Loopback-published ports: the container answers the host's address in its network.
      const hostAddress = family === 4 ? n.hostAddress4 : '';
      if (hostAddress) postrouting.push(`oifname ${gw} ip saddr 127.0.0.0/8 ip daddr ${cidr} snat ip to ${hostAddress}`);
    }
  }
  forward.push(`iifname ${gw} drop`, `oifname ${gw} drop`);
  const chain = (name: string, hook: string, type: string, priority: string, rules: string[]) =>
    [`  chain ${name} {`, `    type ${type} hook ${hook} priority ${priority}; policy accept;`, ...rules.map((r) => `    ${r}`), '  }'].join('\n');
  return [
    `table inet ${TABLE} {`,
    chain('prerouting', 'prerouting', 'nat', 'dstnat', prerouting),
    chain('output', 'output', 'nat', '-100', output),
    chain('postrouting', 'postrouting', 'nat', 'srcnat', postrouting),
    chain('input', 'input', 'filter', 'filter', input),
    chain('forward', 'forward', 'filter', 'filter', forward),
    '}',
  ].join('\n');
}

/**
 * One nft transaction that replaces the table (or removes it when `ruleset` is null): creating
 * it empty first makes the delete safe when it does not exist yet.
 */
export function replaceScript(ruleset: string | null): string {
  return [`table inet ${TABLE} {}`, `delete table inet ${TABLE}`, ...(ruleset ? [ruleset] : [])].join('\n') + '\n';
}

export class NftError extends Error {}

/** Runs `nft -f -` (in `netns` when given, for simulated hosts) with the script on stdin. */
export function runNft(nft: string, script: string, netns = ''): Promise<void> {
  const [cmd, args] = netns ? ['nsenter', [`--net=${netns}`, nft, '-f', '-']] : [nft, ['-f', '-']];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      if (err.length < 8192) err += c.toString();
    });
    child.on('error', (e) => reject(new NftError(`cannot run ${nft}: ${e.message} (install nftables)`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new NftError(`nft failed (exit ${code}): ${err.trim()}`))));
    child.stdin.on('error', () => undefined);
    child.stdin.end(script);
  });
}

/** Keeps `table inet loom` equal to the rendered state; writes only when it changed. */
export class HostFirewall {
  private applied: string | null | undefined = undefined;

  constructor(
    private readonly nft: string,
    private readonly netns: string,
  ) {}

  async sync(state: FirewallState): Promise<boolean> {
    const ruleset = renderRuleset(state);
    if (ruleset === this.applied) return false;
    await runNft(this.nft, replaceScript(ruleset), this.netns);
    this.applied = ruleset;
    return true;
  }
}
