// bench:podman: what a podman user waits for, Loom against the standard `bridge` plugin, in the
// same run: `podman run --rm IMAGE true` on a Loom network and on a bridge network (host-local
// IPAM), alternating, N times each. podman 4.3 with its CNI backend, as issue 13 measured it.
// Before timing, it checks with podman itself what a user does: an unnamed container attaches,
// two containers reach each other, `-p 8080:80` answers from an outside namespace on the
// underlay, and `podman rm` removes the endpoint. The image is busybox-static imported locally
// (no registry is reachable here).
// Needs: apt-get install podman runc busybox-static. Uses runc (crun refuses this machine's
// cgroup v1 layout) and a lower default ulimit (podman's default may exceed what the sandbox
// grants); both live in a containers.conf of its own, nothing of the machine's podman config changes.
// Last line: RESULT runs=N loom_run_p50_ms=... bridge_run_p50_ms=... ratio_vs_bridge=...
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, startCluster } from '../test/harness/index.js';
import { createOutside } from '../test/harness/outside.js';
import { startController } from '../test/harness/controller.js';

const N = Number(process.env.BENCH_PODMAN_N ?? 10);
const IMAGE = 'localhost/loom-bench-busybox';
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (const tool of ['podman', 'runc', 'busybox']) {
  if (!(await run('which', [tool]).then(() => true, () => false))) {
    console.error(`bench:podman needs ${tool}: apt-get install podman runc busybox-static`);
    process.exit(2);
  }
}

const work = mkdtempSync(join(tmpdir(), 'loom-bench-podman-'));
const ctl = await startController({ hostDownAfterMs: 60_000 });
await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', ipv4BlockPrefix: 24, tunnelType: 'TUNNEL_TYPE_VXLAN' });
const cluster = await startCluster({ hosts: ['pod'], controller: ctl.target });
const env = { ...process.env, CONTAINERS_CONF: join(work, 'containers.conf') };
/** podman with this bench's containers.conf; rejects with its stderr when it fails. */
const podman = (...args: string[]): Promise<string> => run('podman', args, { env });
/** Milliseconds a podman command took (it must succeed). */
const timed = async (...args: string[]): Promise<number> => {
  const t0 = performance.now();
  await podman(...args);
  return performance.now() - t0;
};
try {
  mkdirSync(join(work, 'net.d'));
  mkdirSync(join(work, 'bin'));
  symlinkSync(join(cluster.cniBin, 'loom'), join(work, 'bin', 'loom'));
  // The conflist the Ansible role writes, and podman's own default kind of network.
  writeFileSync(join(work, 'net.d', '10-loomnet.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'loomnet', plugins: [{ type: 'loom', network: 'blue', agentSocket: cluster.agents[0]!.socket, capabilities: { portMappings: true, dns: true, aliases: true } }] }));
  writeFileSync(
    join(work, 'net.d', '20-bridgenet.conflist'),
    JSON.stringify({ cniVersion: '1.0.0', name: 'bridgenet', plugins: [{ type: 'bridge', bridge: 'lbpod0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '198.51.100.0/24' }]], dataDir: join(work, 'ipam') } }] }),
  );
  writeFileSync(
    env.CONTAINERS_CONF,
    [
      '[containers]',
      'default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]',
      '[engine]',
      'runtime = "runc"',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ["${join(work, 'bin')}", "/usr/lib/cni"]`,
      `network_config_dir = "${join(work, 'net.d')}"`,
      '',
    ].join('\n'),
  );
  if (!(await podman('image', 'exists', IMAGE).then(() => true, () => false))) {
    const rootfs = join(work, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    execFileSync('cp', ['/bin/busybox', join(rootfs, 'bin', 'busybox')]);
    for (const applet of ['sh', 'ip', 'ping', 'httpd', 'true']) symlinkSync('busybox', join(rootfs, 'bin', applet));
    execFileSync('sh', ['-c', `tar -C ${rootfs} -c . | podman import - ${IMAGE}`], { env });
  }

  // What a user does, checked with podman itself.
  const unnamed = await podman('run', '--rm', '--network', 'loomnet', IMAGE, 'ip', '-4', 'addr', 'show', 'eth0');
  if (!/inet 198\.18\./.test(unnamed)) throw new Error(`an unnamed container got no Loom address: ${unnamed}`);
  await podman('run', '-d', '--name', 'loom-bench-web', '--network', 'loomnet', '-p', '8080:80', IMAGE, 'httpd', '-f', '-p', '80', '-h', '/bin');
  const webIp = (await podman('inspect', 'loom-bench-web', '--format', '{{(index .NetworkSettings.Networks "loomnet").IPAddress}}')).trim();
  await podman('run', '--rm', '--network', 'loomnet', IMAGE, 'ping', '-c', '2', '-W', '2', webIp);
  const outside = await createOutside(cluster.underlay, ['192.0.2.100/24']);
  try {
    const got = await run('ip', ['netns', 'exec', outside.netns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '5', `http://${cluster.vteps.pod}:8080/busybox`]);
    if (got.trim() !== '200') throw new Error(`published port answered ${got}`);
  } finally {
    await outside.remove();
  }
  await podman('rm', '-f', 'loom-bench-web');
  const left = (await ctl.client.listEndpoints({ network: 'blue' })).endpoints.filter((e) => !e.name.startsWith('_gw'));
  if (left.length > 0) throw new Error(`podman rm left endpoints behind: ${left.map((e) => e.containerId).join(',')}`);
  console.log(`checked with podman: unnamed run (${/inet (\S+)/.exec(unnamed)?.[1]}), container to container, -p 8080:80 from outside, rm`);

  // What it costs, alternating so both see the same machine.
  const loom: number[] = [];
  const bridge: number[] = [];
  for (let i = 0; i < N; i++) {
    const pair = i % 2 === 0 ? ['loomnet', 'bridgenet'] : ['bridgenet', 'loomnet'];
    for (const net of pair) {
      (net === 'loomnet' ? loom : bridge).push(await timed('run', '--rm', '--network', net, IMAGE, 'true'));
    }
  }
  // The agent's share of each podman run: its time per CNI request, by command.
  const agentMs = new Map<string, number[]>();
  for (const line of cluster.agents[0]!.logs.split('\n')) {
    const m = /"command":"(\w+)","exitCode":0,"ms":([\d.]+).*"msg":"CNI request answered"/.exec(line);
    if (m) agentMs.set(m[1]!, [...(agentMs.get(m[1]!) ?? []), Number(m[2])]);
  }
  console.log(`agent time per CNI request (median): ${[...agentMs].map(([cmd, xs]) => `${cmd} ${median(xs).toFixed(1)} ms x${xs.length}`).join(', ')}`);
  const [l, b] = [median(loom), median(bridge)];
  console.log(`podman run --rm ${IMAGE} true, medians of ${N}: loom ${l.toFixed(0)} ms, bridge ${b.toFixed(0)} ms (loom ${loom.map((x) => x.toFixed(0)).join(' ')}; bridge ${bridge.map((x) => x.toFixed(0)).join(' ')})`);
  console.log(`RESULT runs=${N} loom_run_p50_ms=${l.toFixed(0)} bridge_run_p50_ms=${b.toFixed(0)} ratio_vs_bridge=${(l / b).toFixed(2)}`);
} finally {
  await podman('rm', '-f', 'loom-bench-web').catch(() => undefined);
  await cluster.stop();
  await ctl.stop();
  rmSync(work, { recursive: true, force: true });
}
