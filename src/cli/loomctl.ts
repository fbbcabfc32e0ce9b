/**
 * loomctl: operate a Loom controller. Exit status: 0 ok, 1 the controller refused the request,
 * 2 usage error, 3 `wait` timed out before convergence, 4 controller unreachable.
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import { isServiceError, LoomClient } from '../api/client.js';
import { FailoverClient, leaderHint, parseControllerList } from '../api/failover.js';
import { clientCredentials } from '../common/tls.js';
import type { DnsConfig, EgressMode, Endpoint, EndpointUpdateField, Isolation, Network, Policy, PortMapping, TunnelType, UpdateEndpointRequest } from '../api/types.js';
import { parseCommandLine, UsageError, type FlagValues } from './args.js';
import { fromWord, linkPolicy, parseLabels, parsePorts, parsePortSpec, peer, protocolOf } from './policy-args.js';
import { ago, dropSummary, json, table, traceText } from './format.js';

const HELP = `loomctl: inspect and change a Loom overlay through its controller.

Usage: loomctl [global flags] <command> [args]

Commands:
  network create NAME --ipv4 CIDR [--ipv6 CIDR] [--vni N] [--tunnel vxlan|gre] [--mtu N]
                 [--gateway IP]... [--dns-server IP]... [--dns-search DOMAIN]...
                 [--dns-domain DOMAIN (endpoints' names; default NAME.loom)]
                 [--block-prefix N] [--ipv6-block-prefix N] [--isolation open|isolated]
                 [--egress nat|off]      containers reach the outside through their host,
                                         source translated to its address      [nat]
                 [--ipv6-routed]         IPv6 leaves untranslated (the range is routed to the hosts)
                 [--inbound-source CIDR]...  only these sources reach published ports  [any]
  network update NAME --isolation open|isolated
                              isolated = Docker's --icc=false: endpoints reach each other only
                              where a policy allows it (and the replies come back)
  network list
  network show NAME
  network delete NAME
  host list
  host register NAME --vtep IP  (operator) register a host, or move a registered host to a
                              new VTEP: its agent, refused that, re-registers with it then
  endpoint list [--network NAME] [--host HOST]
  endpoint show NETWORK CONTAINER_ID
  endpoint create NETWORK CONTAINER_ID --host HOST [--name NAME] [--ipv4 IP] [--ipv6 IP]
                  [--mac MAC] [--label K=V]... [--hostname NAME] [--alias NAME]...
                  [--dns-server IP]... [--dns-search DOMAIN]... [--dns-option OPT]...
                              an endpoint without a runtime (the CNI plugin creates them for
                              containers; the host's agent does not plumb this one)
  endpoint update NETWORK CONTAINER_ID [--hostname NAME] [--alias NAME]... [--no-aliases]
                  [--dns-server IP]... [--dns-search DOMAIN]... [--dns-option OPT]... [--no-dns]
                              change names and DNS settings; every host answers the change
                              once 'wait' returns. --hostname: a DNS name the endpoint answers
                              to (default: from its name; --hostname= goes back to it);
                              --alias: further DNS names in its network (replace the list;
                              unique in the network); --dns-server: its own upstreams, where
                              names outside Loom go (podman --dns); --dns-search, --dns-option:
                              its resolv.conf search domains (after the network's domain) and
                              options; the flags given replace those parts, --no-dns drops them all
  policy create NAME --network NET [--from-endpoint NAME]... [--from-label K=V]...
                [--from-cidr CIDR]... [--from outside] [--to-endpoint NAME]...
                [--to-label K=V]... [--protocol tcp|udp|icmp|any] [--port N|N-M[/tcp|udp]]...
                              allow new connections from -> to (labels: all must match);
                              --from outside: what enters through the host path (published
                              ports, the host itself); creating an existing NAME replaces it
  policy list [--network NET]
  policy show NETWORK NAME
  policy delete NETWORK NAME  new connections it allowed are refused once 'wait' returns;
                              established ones keep flowing (see docs/architecture.md)
  policy explain FROM TO [PORT[/tcp|udp]] [--network NET] [--protocol P]
                              which policies let endpoint FROM (or 'outside') open
                              connections to TO
  link CLIENT SERVER --port N[/tcp|udp]... [--network NET] [--name NAME] [--alias ALIAS]
                              Docker's --link: CLIENT may open SERVER's exposed port(s);
                              --alias adds ALIAS to SERVER's DNS names (network-wide, not
                              only for CLIENT as in Docker; --port optional with it)
  status                      hosts up/down, applied revision and lag per agent, packets each host's
                              flow table dropped (by reason: spoof_guard, no_route, ...)
  wait [--revision N]         block until every interested agent applied revision N
       [--timeout SECONDS]    (default: the current revision; timeout 60)
  trace FROM TO [--proto tcp|udp|icmp] [--port N] [--source-address IP] [--live]
        [--timeout SECONDS]   why a packet from endpoint FROM to TO passes or drops: the tables
                              it visits on the source host, the tunnel (type, VNI, VTEPs), the
                              tables on the destination host, and a verdict (spoof guard, no
                              route because a host is down, isolation between networks, policy,
                              delivered). FROM: NETWORK/NAME, a container id, or an endpoint's
                              address; TO: the same or any address (IPv4 or IPv6). The agents
                              run ovs-vswitchd's ofproto/trace. --source-address claims another
                              source (shows the spoof guard). --live also injects a real packet
                              marked with a reserved DSCP at FROM's port and reports where each
                              host saw it leave, and whether that agrees with the simulation.
                              Per host asked: --timeout (default 5 s). Operators only.

Global flags:
  --controller ADDR[,ADDR..]  controller gRPC address (env LOOM_CONTROLLER)  [127.0.0.1:7400]
                              several (a:7400,b:7400,c:7400): writes go to the leader
                              (a follower's refusal names it), reads to the first that
                              answers; each call retries the others for up to 15 s
  --tls-ca FILE               use TLS, trusting this CA (env LOOM_TLS_CA)    [plaintext]
  --tls-cert FILE             client certificate for mutual TLS (env LOOM_TLS_CERT)
  --tls-key FILE              its key (env LOOM_TLS_KEY)
  --tls-server-name NAME      name in the controller's certificate (env LOOM_TLS_SERVER_NAME)
  -o, --output table|json     output format                                  [table]
  -h, --help                  this help

Exit status: 0 ok, 1 request refused (message on stderr), 2 usage error,
3 wait timed out, 4 controller unreachable.
Example: loomctl network create blue --ipv4 10.1.0.0/16 --ipv6 fd00:1::/64 --tunnel vxlan
`;

function int(v: FlagValues, name: string, fallback: number): number {
  const s = v[name];
  if (s === undefined) return fallback;
  const n = Number(s);
  if (typeof s !== 'string' || !Number.isInteger(n) || n < 0) throw new UsageError(`--${name} wants a non-negative integer, got "${String(s)}"`);
  return n;
}

function egressFlag(v: string | undefined): EgressMode {
  if (v === undefined) return 'EGRESS_MODE_UNSPECIFIED';
  if (v !== 'nat' && v !== 'off') throw new UsageError(`--egress must be nat or off, got "${v}"`);
  return v === 'nat' ? 'EGRESS_MODE_NAT' : 'EGRESS_MODE_OFF';
}

/** "nat", "off", "nat, ipv6 routed". */
export function egressText(n: Network): string {
  const mode = n.egress === 'EGRESS_MODE_OFF' ? 'off' : 'nat';
  return n.ipv6Routed ? `${mode}, ipv6 routed` : mode;
}

/** Published ports as podman prints them: "127.0.0.1:8080->80/udp". */
export function portsText(ports: readonly PortMapping[]): string {
  return ports.map((p) => `${p.hostIp ? `${p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp}:` : ''}${p.hostPort}->${p.containerPort}/${p.protocol}`).join(',') || '-';
}

function networkRows(nets: Network[]): string {
  return table(
    ['NAME', 'VNI', 'IPV4', 'IPV6', 'TUNNEL', 'MTU', 'GATEWAYS', 'EGRESS', 'ISOLATION'],
    nets.map((n) => [n.name, n.vni, n.ipv4Cidr, n.ipv6Cidr || '-', n.tunnelType.replace('TUNNEL_TYPE_', '').toLowerCase(), n.mtu, n.gateways.join(','), egressText(n), isolationText(n.isolation)]),
  );
}

function isolationText(i: Isolation): string {
  return i === 'ISOLATION_ISOLATED' ? 'isolated' : 'open';
}

function isolationFlag(v: FlagValues): Isolation {
  const s = v.isolation as string | undefined;
  if (s === undefined) return 'ISOLATION_UNSPECIFIED';
  if (s === 'open') return 'ISOLATION_OPEN';
  if (s === 'isolated') return 'ISOLATION_ISOLATED';
  throw new UsageError(`--isolation must be open or isolated, got "${s}"`);
}

function peerText(p: Policy['from']): string {
  if (!p) return '-';
  const parts = [...p.endpoints, ...Object.entries(p.labels).map(([k, v]) => `${k}=${v}`), ...p.cidrs, ...(p.outside ? ['outside'] : [])];
  return parts.join(',') || '-';
}

function serviceText(p: Policy): string {
  const proto = p.protocol.replace('PROTOCOL_', '').toLowerCase();
  if (p.protocol === 'PROTOCOL_UNSPECIFIED') return 'any';
  if (p.ports.length === 0) return proto;
  return p.ports.map((r) => `${r.last > r.first ? `${r.first}-${r.last}` : r.first}/${proto}`).join(',');
}

function policyRows(ps: Policy[]): string {
  return table(['NETWORK', 'NAME', 'FROM', 'TO', 'SERVICE', 'REVISION'], ps.map((p) => [p.network, p.name, peerText(p.from), peerText(p.to), serviceText(p), p.modRevision]));
}

const DNS_FLAGS = ['dns-server', 'dns-search', 'dns-option'] as const;
const dnsFlagsGiven = (v: FlagValues) => DNS_FLAGS.some((f) => v[f] !== undefined);

/** An endpoint's own DNS settings from the flags; parts not given keep `current`'s. */
function dnsFlags(v: FlagValues, current: DnsConfig | null): DnsConfig {
  const list = (f: (typeof DNS_FLAGS)[number]) => v[f] as string[] | undefined;
  return {
    nameservers: list('dns-server') ?? current?.nameservers ?? [],
    search: list('dns-search') ?? current?.search ?? [],
    options: list('dns-option') ?? current?.options ?? [],
    domain: '',
  };
}

async function run(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { command, args: rest, flags: v } = parseCommandLine(argv);
  if (v.help || command === undefined || command === 'help') {
    out(HELP);
    return command === undefined && !v.help ? 2 : 0;
  }
  const output = (v.output as string | undefined) ?? 'table';
  if (output !== 'table' && output !== 'json') throw new UsageError(`--output must be table or json, got "${output}"`);
  const asJson = output === 'json';
  const target = (v.controller as string | undefined) ?? process.env.LOOM_CONTROLLER ?? '127.0.0.1:7400';
  const flagOrEnv = (flag: string, env: string): string => (v[flag] as string | undefined) ?? process.env[env] ?? '';
  let tls: ReturnType<typeof clientCredentials>;
  try {
    tls = clientCredentials(
      { ca: flagOrEnv('tls-ca', 'LOOM_TLS_CA'), cert: flagOrEnv('tls-cert', 'LOOM_TLS_CERT'), key: flagOrEnv('tls-key', 'LOOM_TLS_KEY'), serverName: flagOrEnv('tls-server-name', 'LOOM_TLS_SERVER_NAME') },
      { ca: '--tls-ca', cert: '--tls-cert', key: '--tls-key' },
    );
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let addresses: string[];
  try {
    addresses = parseControllerList(target);
  } catch (e) {
    throw new UsageError(`--controller: ${(e as Error).message}`);
  }
  // Several controllers: writes follow the leader, reads move on from one that fails, for up to 15 s.
  const client = new FailoverClient(addresses, (a) => new LoomClient(a, tls.options, tls.credentials), addresses.length > 1 ? {} : { failoverMs: 0 });
  const need = (what: string, value: string | undefined): string => {
    if (!value) throw new UsageError(`missing ${what} (see loomctl --help)`);
    return value;
  };
  try {
    switch (command) {
      case 'network create': {
        const tunnel = (v.tunnel as string | undefined) ?? 'vxlan';
        if (tunnel !== 'vxlan' && tunnel !== 'gre') throw new UsageError(`--tunnel must be vxlan or gre, got "${tunnel}"`);
        const n = await client.createNetwork({
          name: need('network NAME', rest[0]),
          ipv4Cidr: need('--ipv4 CIDR', v.ipv4 as string | undefined),
          ipv6Cidr: (v.ipv6 as string | undefined) ?? '',
          vni: int(v, 'vni', 0),
          tunnelType: `TUNNEL_TYPE_${tunnel.toUpperCase()}` as TunnelType,
          mtu: int(v, 'mtu', 0),
          gateways: (v.gateway as string[] | undefined) ?? [],
          dns: { nameservers: (v['dns-server'] as string[] | undefined) ?? [], search: (v['dns-search'] as string[] | undefined) ?? [], options: [], domain: (v['dns-domain'] as string | undefined) ?? '' },
          ipv4BlockPrefix: int(v, 'block-prefix', 0),
          ipv6BlockPrefix: int(v, 'ipv6-block-prefix', 0),
          egress: egressFlag(v.egress as string | undefined),
          ipv6Routed: v['ipv6-routed'] === true,
          inboundSources: (v['inbound-source'] as string[] | undefined) ?? [],
          isolation: isolationFlag(v),
        });
        out(asJson ? json(n) : networkRows([n]));
        return 0;
      }
      case 'network update': {
        const isolation = isolationFlag(v);
        if (isolation === 'ISOLATION_UNSPECIFIED') throw new UsageError('network update needs --isolation open|isolated');
        const n = await client.updateNetwork({ name: need('network NAME', rest[0]), isolation });
        out(asJson ? json(n) : networkRows([n]));
        return 0;
      }
      case 'policy create': {
        const strings = (name: string) => (v[name] as string[] | undefined) ?? [];
        const { protocol, ports } = parsePorts(strings('port'), v.protocol as string | undefined);
        const p = await client.createPolicy({
          network: need('--network NET', v.network as string | undefined),
          name: need('policy NAME', rest[0]),
          from: peer(strings('from-endpoint'), strings('from-label'), strings('from-cidr'), fromWord(v.from as string | undefined)),
          to: peer(strings('to-endpoint'), strings('to-label')),
          protocol,
          ports,
        });
        out(asJson ? json(p) : policyRows([p]));
        return 0;
      }
      case 'policy list': {
        const r = await client.listPolicies({ network: v.network as string | undefined });
        out(asJson ? json(r.policies) : policyRows(r.policies));
        return 0;
      }
      case 'policy show': {
        const p = await client.getPolicy(need('NETWORK', rest[0]), need('policy NAME', rest[1]));
        out(asJson ? json(p) : policyRows([p]));
        return 0;
      }
      case 'policy delete': {
        const network = need('NETWORK', rest[0]);
        const name = need('policy NAME', rest[1]);
        const r = await client.deletePolicy(network, name);
        out(asJson ? json({ deleted: name, network, revision: r.revision }) : `policy ${name} of network ${network} deleted (revision ${r.revision}; 'loomctl wait' returns once every host enforces it)\n`);
        return 0;
      }
      case 'policy explain': {
        const spec = rest[2] ? parsePortSpec(rest[2]) : undefined;
        if (spec && spec.range.last) throw new UsageError('explain takes one port, not a range');
        const protocol = v.protocol !== undefined ? protocolOf(v.protocol as string) : (spec?.protocol ?? 'PROTOCOL_UNSPECIFIED');
        const r = await client.explainPolicy({ network: v.network as string | undefined, from: need('FROM endpoint (or outside)', rest[0]), to: need('TO endpoint', rest[1]), protocol, port: spec?.range.first ?? 0 });
        out(asJson ? json(r) : `${r.allowed ? 'allowed' : 'denied'}: ${r.reason}\n`);
        return r.allowed ? 0 : 1;
      }
      case 'link': {
        const clientName = need('CLIENT endpoint', rest[0]);
        const serverName = need('SERVER endpoint', rest[1]);
        let network = v.network as string | undefined;
        if (!network) {
          const eps = (await client.listEndpoints()).endpoints;
          const nets = [...new Set(eps.filter((e) => e.name === clientName).map((e) => e.network))].filter((n) => eps.some((e) => e.network === n && e.name === serverName));
          if (nets.length !== 1) throw new UsageError(nets.length === 0 ? `no network has both ${clientName} and ${serverName}; give --network` : `${clientName} and ${serverName} share networks ${nets.join(', ')}; give --network`);
          network = nets[0]!;
        }
        const alias = v.alias as string | undefined;
        const portSpecs = (v.port as string[] | undefined) ?? [];
        const p = alias && portSpecs.length === 0 ? undefined : await client.createPolicy(linkPolicy(network, clientName, serverName, portSpecs, v.name as string | undefined));
        let aliased: Endpoint | undefined;
        if (alias) {
          const server = (await client.listEndpoints({ network })).endpoints.find((e) => e.name === serverName);
          if (!server) throw new UsageError(`network ${network} has no endpoint named ${serverName}`);
          aliased = server.aliases.includes(alias.toLowerCase())
            ? server
            : await client.updateEndpoint({ network, containerId: server.containerId, updateMask: ['aliases'], aliases: [...server.aliases, alias] });
        }
        if (asJson) out(json({ ...(p ? { policy: p } : {}), ...(aliased ? { endpoint: aliased } : {}) }));
        else {
          if (p) out(`${clientName} may open ${serviceText(p)} on ${serverName} (policy ${p.name} of network ${network}, revision ${p.modRevision})\n`);
          if (aliased) out(`${serverName} answers to ${alias} in network ${network} (revision ${aliased.modRevision})\n`);
        }
        return 0;
      }
      case 'network list': {
        const r = await client.listNetworks();
        out(asJson ? json(r.networks) : networkRows(r.networks));
        return 0;
      }
      case 'network show': {
        const n = await client.getNetwork(need('network NAME', rest[0]));
        if (asJson) out(json(n));
        else {
          out(networkRows([n]));
          const dns = n.dns ?? { nameservers: [], search: [], domain: '' };
          out(`block prefixes: /${n.ipv4BlockPrefix}${n.ipv6Cidr ? ` and /${n.ipv6BlockPrefix}` : ''}; dns: ${dns.nameservers.join(',') || '-'} search ${dns.search.join(',') || '-'} domain ${dns.domain || `${n.name}.loom`}; revision ${n.modRevision}\n`);
          // Where the network meets each host: the host's address in it, and what egress leaves as.
          const gws = (await client.listEndpoints({ network: n.name })).endpoints.filter((e) => e.hostGateway);
          const leaves = n.egress === 'EGRESS_MODE_OFF' ? 'no egress' : `egress ${n.ipv6Routed ? 'IPv4 masqueraded, IPv6 routed' : 'masqueraded'} to each host's outgoing address`;
          out(`${leaves}; inbound sources: ${n.inboundSources.join(',') || 'any'}\n`);
          if (gws.length > 0) out(table(['HOST', 'HOST ADDRESS (IPV4)', 'HOST ADDRESS (IPV6)'], gws.map((g) => [g.host, g.ipv4, g.ipv6 || '-'])));
        }
        return 0;
      }
      case 'network delete': {
        const name = need('network NAME', rest[0]);
        const r = await client.deleteNetwork(name);
        out(asJson ? json({ deleted: name, revision: r.revision }) : `network ${name} deleted (revision ${r.revision})\n`);
        return 0;
      }
      case 'host list': {
        const r = await client.listHosts();
        out(asJson ? json(r.hosts) : table(['NAME', 'VTEP', 'STATE', 'AGENT', 'CAPABILITIES'], r.hosts.map((h) => [h.name, h.vtep, h.up ? 'up' : 'down', h.agentVersion || '-', h.capabilities.join(',') || '-'])));
        return 0;
      }
      case 'host register': {
        const r = await client.register({ name: need('host NAME', rest[0]), vtep: need('--vtep IP', v.vtep as string | undefined) });
        out(asJson ? json(r.host) : `host ${r.host?.name} registered with VTEP ${r.host?.vtep} (revision ${r.revision})\n`);
        return 0;
      }
      case 'endpoint list': {
        const r = await client.listEndpoints({ network: v.network as string | undefined, host: v.host as string | undefined });
        out(
          asJson
            ? json(r.endpoints)
            : table(
                ['NETWORK', 'CONTAINER', 'NAME', 'HOST', 'MAC', 'IPV4', 'IPV6', 'PORTS'],
                r.endpoints.map((e) => [e.network, e.hostGateway ? '(host gateway)' : e.containerId.slice(0, 24), e.name, e.host, e.mac, e.ipv4, e.ipv6 || '-', portsText(e.ports)]),
              ),
        );
        return 0;
      }
      case 'endpoint show': {
        const e = await client.getEndpoint(need('NETWORK', rest[0]), need('CONTAINER_ID', rest[1]));
        if (asJson) out(json(e));
        else {
          const dns = e.dns ?? { nameservers: [], search: [], options: [] };
          out(
            table(['FIELD', 'VALUE'], [
              ['network', `${e.network} (vni ${e.vni})`],
              ['container', e.containerId],
              ['name', e.name],
              ['host', e.host],
              ['mac', e.mac],
              ['ipv4', e.ipv4],
              ['ipv6', e.ipv6 || '-'],
              ['gateways', e.gateways.join(', ') || '-'],
              ['routes', e.routes.map((r) => `${r.destination} via ${r.gateway}`).join(', ') || '-'],
              ['mtu', e.mtu],
              ['ports', portsText(e.ports)],
              ['hostname', e.hostname || '-'],
              ['aliases', e.aliases.join(', ') || '-'],
              ['dns', `${dns.nameservers.join(',') || '-'} search ${dns.search.join(',') || '-'} options ${dns.options.join(',') || '-'}`],
              ['own dns', e.dnsOverride ? `${e.dnsOverride.nameservers.join(',') || '-'} search ${e.dnsOverride.search.join(',') || '-'} options ${e.dnsOverride.options.join(',') || '-'}` : '-'],
              ['revision', e.modRevision],
            ]),
          );
        }
        return 0;
      }
      case 'endpoint create': {
        const e = await client.createEndpoint({
          network: need('NETWORK', rest[0]),
          containerId: need('CONTAINER_ID', rest[1]),
          host: need('--host HOST', v.host as string | undefined),
          ...(v.name ? { name: v.name as string } : {}),
          ...(v.ipv4 ? { ipv4: v.ipv4 as string } : {}),
          ...(v.ipv6 ? { ipv6: v.ipv6 as string } : {}),
          ...(v.mac ? { mac: v.mac as string } : {}),
          labels: parseLabels((v.label as string[] | undefined) ?? []),
          ...(v.hostname ? { hostname: v.hostname as string } : {}),
          aliases: (v.alias as string[] | undefined) ?? [],
          ...(dnsFlagsGiven(v) ? { dns: dnsFlags(v, null) } : {}),
        });
        out(asJson ? json(e) : `endpoint ${e.name} (container ${e.containerId}) on ${e.network}: ${e.ipv4}${e.ipv6 ? ` ${e.ipv6}` : ''} (revision ${e.modRevision})\n`);
        return 0;
      }
      case 'endpoint update': {
        const network = need('NETWORK', rest[0]);
        const containerId = need('CONTAINER_ID', rest[1]);
        const mask: EndpointUpdateField[] = [];
        const req: UpdateEndpointRequest = { network, containerId, updateMask: mask };
        if (v['no-dns'] && dnsFlagsGiven(v)) throw new UsageError('--no-dns and --dns-server/--dns-search/--dns-option contradict each other');
        if (v['no-aliases'] && v.alias) throw new UsageError('--no-aliases and --alias contradict each other');
        if (v['no-dns']) mask.push('dns');
        else if (dnsFlagsGiven(v)) {
          // The flags given replace those parts of the endpoint's own settings; the others stay.
          mask.push('dns');
          req.dns = dnsFlags(v, (await client.getEndpoint(network, containerId)).dnsOverride);
        }
        if (v.hostname !== undefined) {
          mask.push('hostname');
          req.hostname = v.hostname as string;
        }
        if (v['no-aliases'] || v.alias) {
          mask.push('aliases');
          req.aliases = (v.alias as string[] | undefined) ?? [];
        }
        if (mask.length === 0) throw new UsageError('endpoint update needs --hostname, --alias, --no-aliases, --dns-server, --dns-search, --dns-option or --no-dns');
        const e = await client.updateEndpoint(req);
        out(asJson ? json(e) : `endpoint ${e.name} on ${e.network} updated (revision ${e.modRevision}; 'loomctl wait' returns once every host answers it)\n`);
        return 0;
      }
      case 'status': {
        const s = await client.getStatus();
        if (asJson) out(json(s));
        else {
          out(`revision ${s.revision}, hosts ${s.hosts.filter((h) => h.up).length} up / ${s.hosts.filter((h) => !h.up).length} down\n`);
          out(table(['HOST', 'VTEP', 'STATE', 'WATCH', 'APPLIED', 'LAG', 'NETWORKS', 'ENDPOINTS', 'LAST SEEN', 'DROPPED'], s.hosts.map((h) => [h.name, h.vtep, h.up ? 'up' : 'down', h.connected ? 'connected' : '-', h.appliedRevision, h.lag, h.networks, h.endpoints, ago(h.lastSeenMsAgo), dropSummary(h.drops ?? [])])));
        }
        return 0;
      }
      case 'wait': {
        const timeoutMs = int(v, 'timeout', 60) * 1000;
        const revision = int(v, 'revision', 0) || (await client.getStatus()).revision;
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const left = deadline - Date.now();
          const r = await client.wait(revision, Math.max(1, Math.min(2000, left)));
          if (r.converged) {
            out(asJson ? json(r) : `revision ${revision} applied by every interested agent\n`);
            return 0;
          }
          if (Date.now() >= deadline) {
            if (asJson) out(json(r));
            err(`loomctl: timed out after ${timeoutMs / 1000}s waiting for revision ${revision}; pending: ${r.pendingHosts.join(', ')}\n`);
            return 3;
          }
          const shown = r.pendingHosts.slice(0, 5).join(', ') + (r.pendingHosts.length > 5 ? ', ...' : '');
          err(`waiting for revision ${revision}: ${r.pendingHosts.length} host(s) pending (${shown})\n`);
        }
      }
      case 'trace': {
        const protocol = (v.proto as string | undefined) ?? 'icmp';
        if (!['icmp', 'tcp', 'udp'].includes(protocol)) throw new UsageError(`--proto must be tcp, udp or icmp, got "${protocol}"`);
        const port = int(v, 'port', 0);
        if (port > 65535) throw new UsageError(`--port ${port} is not a port number`);
        if (port && protocol === 'icmp') throw new UsageError('--port needs --proto tcp or udp');
        const timeoutS = int(v, 'timeout', 5);
        if (timeoutS < 1 || timeoutS > 30) throw new UsageError('--timeout must be 1-30 seconds');
        const r = await client.trace({
          from: need('FROM endpoint', rest[0]),
          to: need('TO endpoint or address', rest[1]),
          protocol,
          port,
          sourceAddress: (v['source-address'] as string | undefined) ?? '',
          live: v.live === true,
          timeoutMs: timeoutS * 1000,
        });
        out(asJson ? json(r) : traceText(r));
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}" (see loomctl --help)`);
    }
  } catch (e) {
    if (isServiceError(e)) {
      if (e.code === grpcStatus.UNAVAILABLE && leaderHint(e)) {
        // A follower answered, and the leader it names is not in --controller (or did not answer).
        err(`loomctl: ${e.details}${addresses.length === 1 ? ' (give loomctl every controller: --controller a:7400,b:7400,c:7400)' : ''}\n`);
        return 4;
      }
      if (e.code === grpcStatus.UNAVAILABLE || e.code === grpcStatus.DEADLINE_EXCEEDED) {
        err(`loomctl: cannot reach the controller at ${target}: ${e.details}\n`);
        return 4;
      }
      err(`loomctl: ${grpcStatus[e.code]}: ${e.details}\n`);
      return 1;
    }
    throw e;
  } finally {
    client.close();
  }
}

run(process.argv.slice(2), (s) => process.stdout.write(s), (s) => process.stderr.write(s)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`loomctl: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`loomctl: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
