// Network policy compilation (rules -> flows), pure: conjunction clause sizes, growth with rules
// plus endpoints (never their product), the stateful skeleton, and that every flow encodes.
import { describe, expect, it } from 'vitest';
import { buildPipeline, diffFlows } from '../../../src/agent/pipeline/pipeline.js';
import { conjunctionIds, NetworkPolicyCompiler, networkPolicyFlows, PolicyPriority } from '../../../src/agent/pipeline/policy.js';
import { Feature, Table, cookieFeature, ctZone } from '../../../src/agent/pipeline/fields.js';
import type { DirectoryEntry, Flow, NetworkState, PipelineState, PolicyRule } from '../../../src/agent/pipeline/state.js';
import { encodeMatch } from '../../../src/openflow/match.js';
import { encodeInstructions } from '../../../src/openflow/instructions.js';
import { formatMatch } from '../../../src/openflow/printer.js';
import type { Action } from '../../../src/openflow/types.js';
import fc from 'fast-check';

const TUNNEL = 10;
const peer = (endpoints: string[] = [], labels: Record<string, string> = {}, cidrs: string[] = []) => ({ endpoints, labels, cidrs });

function network(directory: DirectoryEntry[], rules: PolicyRule[], isolated = true): NetworkState {
  return {
    vni: 100,
    tunnel: 'vxlan',
    gateway4: '198.18.0.1',
    endpoints: directory.filter((d) => d.ofport !== undefined).map((d) => ({ id: d.name, ofport: d.ofport!, mac: '02:42:00:00:00:01', ipv4: d.ipv4, ipv6: d.ipv6 })),
    remote: [],
    policy: { network: 'iso', isolated, directory, rules },
  };
}

const local = (i: number, labels: Record<string, string> = {}): DirectoryEntry => ({ name: `l${i}`, labels, ipv4: `198.18.0.${i + 10}`, ipv6: `fd00::${i + 10}`, ofport: i });
const remote = (i: number, labels: Record<string, string> = {}): DirectoryEntry => ({ name: `r${i}`, labels, ipv4: `198.18.1.${i}` });
const actionsOf = (f: Flow): Action[] => f.instructions.flatMap((i) => ('actions' in i ? i.actions : []));
const conjunctions = (flows: Flow[]) => flows.filter((f) => actionsOf(f).some((a) => a.type === 'conjunction'));

describe('network policy compilation', () => {
  it('builds nothing for an open network and the stateful skeleton for an isolated one', () => {
    expect(networkPolicyFlows(1, network([local(1)], [], false), TUNNEL).flows).toEqual([]);
    const { flows } = networkPolicyFlows(1, network([local(1), local(2)], []), TUNNEL);
    const text = flows.map((f) => `${f.priority} ${formatMatch(f.match)}`).sort();
    expect(text).toEqual([
      '10 ct_state=+trk,reg1=0x64/0xffffff',
      '190 ct_state=+new+trk,ip,reg1=0x64/0xffffff,reg2=0xa',
      '190 ct_state=+new+trk,ipv6,reg1=0x64/0xffffff,reg2=0xa',
      '200 ct_state=+est+trk,reg1=0x64/0xffffff',
      '200 ct_state=+rel+trk,reg1=0x64/0xffffff',
      '210 ct_state=+inv+trk,reg1=0x64/0xffffff',
      '5 ct_state=-trk,ip,reg1=0x64/0xffffff',
      '5 ct_state=-trk,ipv6,reg1=0x64/0xffffff',
    ]);
    const track = flows.find((f) => f.priority === PolicyPriority.Track)!;
    expect(actionsOf(track)).toEqual([{ type: 'ct', zone: ctZone(100), table: Table.Policy }]);
    const deny = flows.find((f) => f.priority === PolicyPriority.Deny)!;
    expect(deny.instructions).toEqual([]);
    for (const f of flows) expect(cookieFeature(f.cookie)).toBe(Feature.NetworkPolicy);
  });

  it('compiles a link to three clauses: destination port, source addresses, service', () => {
    const dir = [local(1), local(2), remote(1)];
    const rule: PolicyRule = { name: 'ssh', from: peer(['r1']), to: peer(['l2']), protocol: 'tcp', ports: [{ first: 22, last: 22 }] };
    const { flows, rules } = networkPolicyFlows(1, network(dir, [rule]), TUNNEL);
    const id = conjunctionIds(100, [rule]).get('ssh')!;
    expect(rules).toEqual([{ name: 'ssh', id, clauses: [1, 1, 2] }]);
    const clauses = conjunctions(flows).map((f) => `${formatMatch(f.match)} -> ${actionsOf(f).map((a) => JSON.stringify(a)).join(' ')}`).sort();
    expect(clauses).toEqual(
      [
        `ct_state=+new+trk,ip,reg1=0x64/0xffffff,nw_src=198.18.1.1 -> {"type":"conjunction","id":${id},"clause":2,"nClauses":3}`,
        `ct_state=+new+trk,reg1=0x64/0xffffff,reg2=0x2 -> {"type":"conjunction","id":${id},"clause":1,"nClauses":3}`,
        `ct_state=+new+trk,tcp,reg1=0x64/0xffffff,tp_dst=22 -> {"type":"conjunction","id":${id},"clause":3,"nClauses":3}`,
        `ct_state=+new+trk,tcp6,reg1=0x64/0xffffff,tp_dst=22 -> {"type":"conjunction","id":${id},"clause":3,"nClauses":3}`,
      ].sort(),
    );
    const allow = flows.filter((f) => f.match.some((m) => m.field === 'conj_id'));
    expect(allow).toHaveLength(2);
    for (const f of allow) {
      expect(f.priority).toBe(PolicyPriority.Rule);
      expect(f.instructions).toEqual([{ type: 'apply_actions', actions: [{ type: 'ct', commit: true, zone: ctZone(100) }] }, { type: 'goto_table', table: Table.Output }]);
      expect(f.cookie & 0xff_ffff_ffffn).toBe(BigInt(id));
    }
  });

  it('skips a rule that names no local destination or no source, and matches CIDRs, labels and port ranges', () => {
    const dir = [local(1, { app: 'web' }), local(2, { app: 'web' }), local(3, { app: 'db' }), remote(1, { app: 'cli' })];
    const rules: PolicyRule[] = [
      { name: 'elsewhere', from: peer(['l1']), to: peer(['r1']), protocol: 'any', ports: [] },
      { name: 'nobody', from: peer(['ghost']), to: peer(['l1']), protocol: 'any', ports: [] },
      { name: 'web', from: peer([], { app: 'cli' }, ['10.9.0.0/16']), to: peer([], { app: 'web' }), protocol: 'tcp', ports: [{ first: 8000, last: 8007 }, { first: 80, last: 80 }] },
      { name: 'ping', from: peer([], {}, ['0.0.0.0/0', '::/0']), to: peer(['l3']), protocol: 'icmp', ports: [] },
    ];
    const { rules: compiled } = networkPolicyFlows(1, network(dir, rules), TUNNEL);
    expect(compiled.map((r) => [r.name, r.clauses])).toEqual([
      ['web', [2, 2, 4]],
      ['ping', [1, 2, 2]],
    ]);
  });

  it('compiles an outside source to one clause flow on entry by the gateway port, whatever the address', () => {
    const dir = [local(1), local(2)];
    const rule: PolicyRule = { name: 'pub', from: { ...peer(), outside: true }, to: peer(['l2']), protocol: 'tcp', ports: [{ first: 80, last: 80 }] };
    const { flows, rules } = networkPolicyFlows(1, network(dir, [rule]), TUNNEL);
    const id = conjunctionIds(100, [rule]).get('pub')!;
    expect(rules).toEqual([{ name: 'pub', id, clauses: [1, 1, 2] }]);
    const sources = conjunctions(flows).filter((f) => actionsOf(f).some((a) => a.type === 'conjunction' && a.clause === 2));
    expect(sources.map((f) => formatMatch(f.match))).toEqual(['ct_state=+new+trk,reg0=0x3/0xf,reg1=0x64/0xffffff']);
    // Endpoint sources and outside together: both alternatives of the same clause.
    const both: PolicyRule = { ...rule, from: { ...peer(['l1']), outside: true } };
    expect(networkPolicyFlows(1, network(dir, [both]), TUNNEL).rules[0]!.clauses).toEqual([1, 3, 2]);
    for (const f of flows) {
      expect(() => encodeMatch(f.match)).not.toThrow();
    }
  });

  it('grows with rules plus the endpoints they name, not their product, and merges shared clauses', () => {
    const count = (locals: number, remotes: number, nRules: number): number => {
      const dir = [...Array.from({ length: locals }, (_, i) => local(i + 1, { role: 'server' })), ...Array.from({ length: remotes }, (_, i) => remote(i + 1, { role: 'client' }))];
      const rules: PolicyRule[] = Array.from({ length: nRules }, (_, i) => ({ name: `r${i}`, from: peer([], { role: 'client' }), to: peer([], { role: 'server' }), protocol: 'tcp', ports: [{ first: 1000 + i, last: 1000 + i }] }));
      return networkPolicyFlows(1, network(dir, rules), TUNNEL).flows.length;
    };
    const skeleton = count(1, 0, 0);
    // Every rule shares its destination and source clause flows; each adds its service (x2 families) and its allow flows (x2).
    expect(count(10, 100, 1)).toBe(skeleton + 10 + 100 + 2 + 2);
    expect(count(10, 100, 50)).toBe(skeleton + 10 + 100 + 50 * 4);
    expect(count(20, 200, 50)).toBe(skeleton + 20 + 200 + 50 * 4);
    const shared = networkPolicyFlows(1, network([local(1, { role: 'server' }), remote(1, { role: 'client' })], [
      { name: 'a', from: peer([], { role: 'client' }), to: peer([], { role: 'server' }), protocol: 'any', ports: [] },
      { name: 'b', from: peer([], { role: 'client' }), to: peer([], { role: 'server' }), protocol: 'udp', ports: [] },
    ]), TUNNEL).flows;
    const dst = conjunctions(shared).find((f) => f.match.some((m) => m.field === 'reg' && m.index === 2))!;
    expect(actionsOf(dst).map((a) => (a as { clause: number; nClauses: number }).nClauses).sort()).toEqual([2, 3]);
  });

  it('gives rules stable, distinct, non-zero conjunction ids', () => {
    const rules = Array.from({ length: 2000 }, (_, i) => ({ name: `rule-${i}`, from: peer(['a']), to: peer(['b']), protocol: 'any' as const, ports: [] }));
    const ids = conjunctionIds(7, rules);
    expect(new Set(ids.values()).size).toBe(2000);
    expect([...ids.values()].includes(0)).toBe(false);
    expect(conjunctionIds(7, [...rules].reverse())).toEqual(ids);
  });

  it('encodes every flow (prerequisites hold) and changes only policy flows when a rule is removed', () => {
    const dir = [local(1, { app: 'web' }), local(2), remote(1)];
    const rules: PolicyRule[] = [
      { name: 'web', from: peer(['r1', 'l2'], {}, ['fd00:9::/64']), to: peer([], { app: 'web' }), protocol: 'udp', ports: [{ first: 5000, last: 5100 }] },
      { name: 'any', from: peer(['l1']), to: peer(['l2']), protocol: 'any', ports: [] },
    ];
    const state = (rs: PolicyRule[]): PipelineState => ({ generation: 3, tunnelPorts: { vxlan: TUNNEL, gre: 11 }, networks: [network(dir, rs)] });
    const before = buildPipeline(state(rules));
    for (const f of before) {
      expect(() => encodeMatch(f.match)).not.toThrow();
      expect(() => encodeInstructions(f.instructions)).not.toThrow();
    }
    const d = diffFlows(before, buildPipeline(state(rules.slice(0, 1))));
    expect(d.remove.length).toBeGreaterThan(0);
    for (const f of [...d.remove, ...d.upsert]) expect(cookieFeature(f.cookie)).toBe(Feature.NetworkPolicy);
  });
});

describe('policy packet counts', () => {
  it('reads allowed packets per rule and denied packets per network from flow statistics', async () => {
    const { policyPacketCounts } = await import('../../../src/agent/pipeline/policy.js');
    const rule: PolicyRule = { name: 'ssh', from: peer(['r1']), to: peer(['l1']), protocol: 'tcp', ports: [{ first: 22, last: 22 }] };
    const state: PipelineState = { generation: 3, tunnelPorts: { vxlan: TUNNEL, gre: 11 }, networks: [network([local(1), remote(1)], [rule])] };
    const flows = buildPipeline(state).map((f) => ({ cookie: f.cookie, packetCount: 0n }));
    const id = conjunctionIds(100, [rule]).get('ssh')!;
    // Both families' allow flows add up; the deny flow counts for the network; skeleton flows do not count.
    for (const f of flows) {
      const object = f.cookie & 0xff_ffff_ffffn;
      if (object === BigInt(id)) f.packetCount = 5n;
      else if (object === (1n << 39n) + 100n) f.packetCount = 7n;
      else f.packetCount = 1000n;
    }
    expect(policyPacketCounts(state, flows)).toEqual([
      { network: 'iso', policy: '', verdict: 'denied', packets: 7 },
      { network: 'iso', policy: 'ssh', verdict: 'allowed', packets: 10 },
    ]);
  });
});

describe('incremental compile (NetworkPolicyCompiler)', () => {
  const text = (f: Flow) => JSON.stringify([f.table, f.priority, f.cookie, f.match, f.instructions], (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  const texts = (flows: readonly Flow[]) => flows.map(text).sort();
  const fresh = (generation: number, net: NetworkState) => {
    const c = new NetworkPolicyCompiler();
    c.compile(generation, net);
    return c;
  };
  // Two directories, each kept as one array (the agent keeps it while no endpoint changes).
  const dirA = [local(1, { app: 'web' }), local(2, { app: 'db' }), local(3, { app: 'web' }), remote(1, { app: 'cli' }), remote(2, { app: 'web' })];
  const dirB = [local(1, { app: 'db' }), local(2, { app: 'db' }), local(4, { app: 'web' }), remote(1, { app: 'cli' }), remote(3, { app: 'cli' })];
  // Rules share clause flows (destinations, sources, services) and come in two versions each.
  const pool: PolicyRule[][] = [
    [
      { name: 'a', from: peer([], { app: 'cli' }), to: peer([], { app: 'web' }), protocol: 'tcp', ports: [{ first: 80, last: 80 }] },
      { name: 'a', from: peer([], { app: 'cli' }), to: peer([], { app: 'db' }), protocol: 'tcp', ports: [{ first: 80, last: 81 }] },
    ],
    [
      { name: 'b', from: peer(['r1']), to: peer(['l1']), protocol: 'tcp', ports: [{ first: 80, last: 80 }] },
      { name: 'b', from: peer(['r1', 'l3']), to: peer(['l1', 'l2']), protocol: 'udp', ports: [] },
    ],
    [
      { name: 'c', from: peer([], {}, ['10.0.0.0/8']), to: peer([], { app: 'web' }), protocol: 'any', ports: [] },
      { name: 'c', from: { ...peer(), outside: true }, to: peer([], { app: 'web' }), protocol: 'icmp', ports: [] },
    ],
    [
      { name: 'd', from: peer(['r2']), to: peer(['ghost']), protocol: 'tcp', ports: [{ first: 22, last: 22 }] },
      { name: 'd', from: peer([], { app: 'web' }), to: peer([], { app: 'web' }), protocol: 'tcp', ports: [{ first: 8000, last: 8080 }] },
    ],
  ];
  const step = fc.record({
    generation: fc.constantFrom(1, 2),
    directory: fc.constantFrom(dirA, dirB),
    picks: fc.array(fc.constantFrom(-1, 0, 1), { minLength: pool.length, maxLength: pool.length }),
    reversed: fc.boolean(),
  });
  const netOf = (s: { directory: DirectoryEntry[]; picks: number[]; reversed: boolean }) => {
    // The same rule object while its version stays (the agent keeps it while the view does).
    const chosen = pool.flatMap((versions, i) => (s.picks[i]! < 0 ? [] : [versions[s.picks[i]!]!]));
    return network(s.directory, s.reversed ? chosen.reverse() : chosen);
  };

  it('leaves the flows a fresh compile builds, through any sequence of rule and directory changes', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 10 }), (steps) => {
        const compiler = new NetworkPolicyCompiler();
        for (const s of steps) {
          const net = netOf(s);
          compiler.compile(s.generation, net);
          const want = fresh(s.generation, net);
          expect(texts(compiler.flows())).toEqual(texts(want.flows()));
          expect(compiler.summary(net.policy!.rules)).toEqual(want.summary(net.policy!.rules));
        }
      }),
    );
  });

  it('builds the same rule flows as the whole network compile, in any rule order', () => {
    const rules = pool.map((v) => v[1]!);
    const net = network(dirA, rules);
    const whole = networkPolicyFlows(1, net, TUNNEL).flows.filter((f) => f.priority === PolicyPriority.Rule);
    expect(texts(fresh(1, net).flows())).toEqual(texts(whole));
    expect(texts(fresh(1, network(dirA, [...rules].reverse())).flows())).toEqual(texts(whole));
  });

  it('changes only the flows of the rule that changed: its allow flows and the clause flows it shares', () => {
    const dir = [...Array.from({ length: 20 }, (_, i) => local(i + 1, { tier: `t${i % 4}` })), ...Array.from({ length: 200 }, (_, i) => remote(i + 1, { app: `a${i % 10}` }))];
    const rules: PolicyRule[] = Array.from({ length: 100 }, (_, i) => ({
      name: `r${i}`,
      from: peer([], { app: `a${i % 10}` }),
      to: peer([], { tier: `t${i % 4}` }),
      protocol: 'tcp',
      ports: [{ first: 1000 + i, last: 1000 + i }],
    }));
    const compiler = new NetworkPolicyCompiler();
    compiler.compile(1, network(dir, rules));
    const before = new Set(compiler.flows());
    const version = compiler.version;
    // Unchanged input: nothing to do, the same flows.
    expect(compiler.compile(1, network(dir, [...rules]))).toBe(false);
    expect(compiler.version).toBe(version);

    const toggle: PolicyRule = { name: 'toggle', from: peer(['l1']), to: peer(['l2']), protocol: 'udp', ports: [{ first: 9999, last: 9999 }] };
    expect(compiler.compile(1, network(dir, [...rules, toggle]))).toBe(true);
    expect(compiler.version).not.toBe(version);
    const after = compiler.flows();
    const added = after.filter((f) => !before.has(f));
    const kept = new Set(after);
    const removed = [...before].filter((f) => !kept.has(f));
    // New: 2 allow flows, 2 service flows (udp, udp6), the source clause of l1 (v4, v6: new), and
    // the destination clause of l2 (shared with the rules to t1: rebuilt with one more conjunction).
    expect(added).toHaveLength(2 + 2 + 2 + 1);
    expect(removed).toHaveLength(1);
    // The compiler tells the same difference itself (what FlowSync sends), from the version before only.
    const delta = compiler.deltaSince(version)!;
    expect(new Set(delta.added)).toEqual(new Set(added));
    expect(new Set(delta.removed)).toEqual(new Set(removed));
    expect(compiler.deltaSince(version - 1)).toBeUndefined();
    const dst = added.find((f) => f.match.some((m) => m.field === 'reg' && m.index === 2))!;
    expect(actionsOf(dst)).toHaveLength(25 + 1);
    // Removing it again gives back the flows of before (by content), touching as few.
    compiler.compile(1, network(dir, rules));
    expect(texts(compiler.flows())).toEqual(texts([...before]));
    expect(compiler.flows().filter((f) => !before.has(f))).toHaveLength(1);
  });

  it('re-resolves rules against a new directory and rebuilds only those whose endpoints changed', () => {
    const rules: PolicyRule[] = [
      { name: 'web', from: peer([], { app: 'cli' }), to: peer([], { app: 'web' }), protocol: 'tcp', ports: [{ first: 80, last: 80 }] },
      { name: 'db', from: peer(['r9']), to: peer(['l2']), protocol: 'tcp', ports: [{ first: 5432, last: 5432 }] },
    ];
    const dir = [local(1, { app: 'web' }), local(2), remote(1, { app: 'cli' }), remote(9)];
    const compiler = new NetworkPolicyCompiler();
    compiler.compile(1, network(dir, rules));
    const dbFlows = compiler.flows().filter((f) => actionsOf(f).some((a) => a.type === 'conjunction' && a.id === conjunctionIds(100, rules).get('db')) && actionsOf(f).length === 1);
    // A new web client: rule "web" gets a source, rule "db" keeps every flow object.
    const grown = [...dir, remote(2, { app: 'cli' })];
    expect(compiler.compile(1, network(grown, rules))).toBe(true);
    const now = new Set(compiler.flows());
    for (const f of dbFlows) expect(now.has(f)).toBe(true);
    expect(compiler.summary(rules).find((r) => r.name === 'web')!.clauses).toEqual([1, 2, 2]);
    // A new directory array with the same endpoints: nothing changes.
    expect(compiler.compile(1, network([...grown], rules))).toBe(false);
  });
});
