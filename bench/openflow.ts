// Installs 100,000 tunnel flows (ipv4_dst -> set tun_id, set tun_ipv4_dst, output to a VXLAN port)
// in one atomic bundle with the OpenFlow client, and the same flows with
// `ovs-ofctl --bundle add-flows` from a file, on the same bridge in the same run; then deletes them
// by cookie both ways. Prints the times and, last, a RESULT line (ratio = ovs-ofctl / client).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHost, run } from '../test/harness/index.js';
import { formatIp } from '../src/common/ip.js';
import { OpenFlowClient, type FlowChange } from '../src/openflow/client.js';

const N = Number(process.env.FLOWS ?? 100_000);
const COOKIE = 0x4c00_0000_0000_0001n;
const TUNNEL_PORT = 10;
const ROUNDS = Number(process.env.ROUNDS ?? 3);

function ip(i: number): string {
  return formatIp(4, 0x0a000000n | BigInt(i & 0xffffff));
}
const vni = (i: number): number => 5000 + (i % 100);
const vtep = (i: number): string => `172.16.${(i >> 8) & 63}.${(i & 255) || 1}`;

const host = await startHost({ name: 'ofb' });
try {
  await host.addBridge('br0', { failMode: 'secure' });
  await host.vsctl('add-port', 'br0', 'vx0', '--', 'set', 'interface', 'vx0', 'type=vxlan',
    'options:remote_ip=flow', 'options:key=flow', `ofport_request=${TUNNEL_PORT}`);
  const flowCount = async (): Promise<number> => {
    const out = await host.ofctl('dump-aggregate', 'br0');
    return Number(/flow_count=(\d+)/.exec(out)?.[1] ?? NaN);
  };
  const expectCount = async (n: number, what: string): Promise<void> => {
    const c = await flowCount();
    if (c !== n) throw new Error(`${what}: expected ${n} flows on br0, found ${c}`);
  };

  // The same flows in ovs-ofctl syntax, written before timing starts (in a function, so the text is
  // garbage by the time anything is timed).
  const file = join(host.dir, 'flows.txt');
  const writeFlowFile = (): void => {
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      lines.push(`table=0,priority=100,cookie=0x${COOKIE.toString(16)},ip,nw_dst=${ip(i)},` +
        `actions=set_field:${vni(i)}->tun_id,set_field:${vtep(i)}->tun_dst,output:${TUNNEL_PORT}`);
    }
    writeFileSync(file, lines.join('\n') + '\n');
  };
  writeFlowFile();

  const client = await OpenFlowClient.connect(`unix:${host.mgmtSocket('br0')}`, { timeoutMs: 120_000 });

  // The client's input, built before timing starts (as the file is for ovs-ofctl); encoding is timed.
  const changes: FlowChange[] = new Array(N);
  for (let i = 0; i < N; i++) {
    changes[i] = {
      command: 'add', table: 0, priority: 100, cookie: COOKIE,
      match: [{ field: 'eth_type', value: 0x0800 }, { field: 'ipv4_dst', value: ip(i) }],
      instructions: [{
        type: 'apply_actions', actions: [
          { type: 'set_field', field: { field: 'tunnel_id', value: BigInt(vni(i)) } },
          { type: 'set_field', field: { field: 'tun_ipv4_dst', value: vtep(i) } },
          { type: 'output', port: TUNNEL_PORT },
        ],
      }],
    };
  }
  const lastFlow = async (): Promise<string | undefined> =>
    (await host.ofctl('--no-stats', 'dump-flows', 'br0', `ip,nw_dst=${ip(N - 1)}`)).trim().split('\n').pop()?.trim();
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await fn();
    return (performance.now() - t0) / 1000;
  };

  const clientRound = async (): Promise<[number, number]> => {
    const install = await timed(() => client.applyBundle(changes));
    await expectCount(N, 'after client bundle');
    clientText = await lastFlow();
    const del = await timed(() => client.deleteFlows({ cookie: COOKIE, cookieMask: 0xffffffffffffffffn }));
    await expectCount(0, 'after client delete');
    return [install, del];
  };
  const ofctlRound = async (): Promise<[number, number]> => {
    const install = await timed(() =>
      run('ovs-ofctl', ['-O', 'OpenFlow13', '--bundle', 'add-flows', 'br0', file], { env: host.env, timeoutMs: 600_000 }));
    await expectCount(N, 'after ovs-ofctl bundle');
    ofctlText = await lastFlow();
    const del = await timed(() =>
      run('ovs-ofctl', ['-O', 'OpenFlow13', 'del-flows', 'br0', `cookie=0x${COOKIE.toString(16)}/-1`], { env: host.env, timeoutMs: 600_000 }));
    await expectCount(0, 'after ovs-ofctl delete');
    return [install, del];
  };

  // Rounds alternate which tool goes first; the best time of each is reported (the machine is shared).
  let clientText: string | undefined;
  let ofctlText: string | undefined;
  const c: Array<[number, number]> = [];
  const o: Array<[number, number]> = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      c.push(await clientRound());
      o.push(await ofctlRound());
    } else {
      o.push(await ofctlRound());
      c.push(await clientRound());
    }
    console.log(`round ${r + 1}: install client ${c[r][0].toFixed(3)} s, ovs-ofctl ${o[r][0].toFixed(3)} s; ` +
      `delete client ${c[r][1].toFixed(3)} s, ovs-ofctl ${o[r][1].toFixed(3)} s`);
  }
  console.log(`client flow:    ${clientText}`);
  console.log(`ovs-ofctl flow: ${ofctlText}`);
  if (clientText !== ofctlText) throw new Error('client and ovs-ofctl installed different flows');
  const best = (xs: Array<[number, number]>, k: 0 | 1): number => Math.min(...xs.map((x) => x[k]));
  const clientInstall = best(c, 0);
  const ofctlInstall = best(o, 0);
  const clientDelete = best(c, 1);
  const ofctlDelete = best(o, 1);

  await client.close();
  const f = (x: number): string => x.toFixed(3);
  console.log(`best of ${ROUNDS}:`);
  console.log(`install ${N} flows (one bundle): client ${f(clientInstall)} s, ovs-ofctl ${f(ofctlInstall)} s`);
  console.log(`delete by cookie:                client ${f(clientDelete)} s, ovs-ofctl ${f(ofctlDelete)} s`);
  console.log(`RESULT flows=${N} client_s=${f(clientInstall)} ovs_ofctl_s=${f(ofctlInstall)} ` +
    `ratio_vs_ovs_ofctl=${(ofctlInstall / clientInstall).toFixed(2)} client_delete_s=${f(clientDelete)} ovs_ofctl_delete_s=${f(ofctlDelete)}`);
} finally {
  await host.stop();
}
