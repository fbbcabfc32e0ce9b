// Running the repository's Ansible against simulated hosts: the inventory (per-host paths, since
// the namespaces share one filesystem), ansible-playbook and its PLAY RECAP, the daemons the
// roles start.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createUnderlay, LOOM_VSWITCHD_ARGS, run, startHost, type SimHost, type Underlay } from '../harness/index.js';
import { generateClientKey, startSshd, type SshServer } from './sshd.js';

export const ROOT = resolve(import.meta.dirname, '../..');

/** What a test's cleanup needs, filled as the lab starts, so a failed start is still removed. */
export interface LabParts {
  hosts: SimHost[];
  ssh: SshServer[];
  nodes: InventoryHost[];
  underlay(u: Underlay): void;
}

/**
 * The release, built exactly as an operator builds it, and `names` as simulated hosts on one
 * underlay (192.0.2.11, .12, ...; OVS bridge br-phy) reached over SSH. Ansible runs in the
 * underlay namespace, on its bridge (192.0.2.254): no address in the root namespace; checksums
 * computed in software, since the hosts' userspace OVS does not fill them in.
 */
export async function startLab(work: string, names: readonly string[], parts: LabParts): Promise<{ tarball: string; version: string; knownHosts: string; privateKey: string }> {
  const packaged = await run('bash', [join(ROOT, 'scripts/package.sh'), join(work, 'release')], { timeoutMs: 120_000 });
  const tarball = packaged.trim().split('\n').at(-1)!;
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const underlay = await createUnderlay();
  parts.underlay(underlay);
  await run('ip', ['-n', underlay.netns, 'addr', 'add', '192.0.2.254/24', 'dev', 'br-ul']);
  await run('ip', ['netns', 'exec', underlay.netns, 'ethtool', '-K', 'br-ul', 'tx', 'off']);
  const key = await generateClientKey(join(work, 'client'));
  for (const [i, name] of names.entries()) {
    const host = await startHost({ name, vswitchdArgs: LOOM_VSWITCHD_ARGS });
    parts.hosts.push(host);
    const address = `192.0.2.${11 + i}`;
    await underlay.connect(host, `${address}/24`, { ovsBridge: 'br-phy' });
    parts.ssh.push(await startSshd(host, address, key));
    parts.nodes.push({ host, address });
  }
  const knownHosts = join(work, 'known_hosts');
  writeFileSync(knownHosts, parts.ssh.map((s) => s.knownHostsLine).join('\n') + '\n');
  return { tarball, version, knownHosts, privateKey: key.privateKey };
}

/** One inventory host: a simulated host reachable over SSH at its underlay address. */
export interface InventoryHost {
  host: SimHost;
  address: string;
}

/** Where the roles install things on a simulated host (host variables of the inventory). */
export function hostPaths(host: SimHost) {
  const root = join(host.dir, 'root');
  return {
    loom_install_dir: join(root, 'opt/loom'),
    loom_config_dir: join(root, 'etc/loom'),
    loom_state_dir: join(root, 'var/lib/loom'),
    loom_run_dir: join(root, 'run/loom'),
    loom_log_dir: join(root, 'var/log/loom'),
    loom_sysv_dir: join(root, 'etc/init.d'),
    loom_cni_bin_dir: join(root, 'opt/cni/bin'),
    loom_cni_conf_dir: join(root, 'etc/cni/net.d'),
    loom_ovs_defaults_file: join(root, 'etc/default/openvswitch-switch'),
  };
}

export interface InventoryOptions {
  controller: InventoryHost;
  /** Several controllers (they elect a leader on etcd); `controller` is then the first. */
  controllers?: InventoryHost[];
  /** Members of group loom_etcd (role loom_etcd). */
  etcd?: InventoryHost[];
  agents: InventoryHost[];
  privateKey: string;
  knownHosts: string;
  version: string;
  tarball: string;
  /** Variables for every host (networks, CNI networks, ...). */
  vars?: Record<string, unknown>;
  /** Variables of one host (its TLS certificate, ...). */
  hostVars?: (h: InventoryHost) => Record<string, unknown>;
}

/** A YAML (JSON) inventory in the shape of ansible/inventory.example.yml. */
export function inventory(o: InventoryOptions): object {
  const hostVars = (h: InventoryHost) => ({
    ansible_host: h.address,
    loom_underlay_address: h.address,
    ...hostPaths(h.host),
    // The harness's own OVS for this host stands in for the distribution's.
    loom_ovsdb_remote: h.host.dbRemote,
    loom_ovs_rundir: h.host.dir,
    ...o.hostVars?.(h),
  });
  const controllers = o.controllers ?? [o.controller];
  const all = [...new Set([...controllers, ...(o.etcd ?? []), ...o.agents])];
  return {
    all: {
      vars: {
        ansible_user: 'root',
        // Already root: no sudo on the hosts.
        ansible_become: false,
        ansible_ssh_private_key_file: o.privateKey,
        ansible_ssh_common_args: `-o UserKnownHostsFile=${o.knownHosts} -o StrictHostKeyChecking=yes`,
        ansible_python_interpreter: '/usr/bin/python3',
        loom_version: o.version,
        loom_release_tarball: o.tarball,
        loom_node: process.execPath,
        ...o.vars,
      },
      hosts: Object.fromEntries(all.map((h) => [h.host.name, hostVars(h)])),
      children: {
        loom_controllers: { hosts: Object.fromEntries(controllers.map((c) => [c.host.name, {}])) },
        ...(o.etcd ? { loom_etcd: { hosts: Object.fromEntries(o.etcd.map((e) => [e.host.name, {}])) } } : {}),
        loom_agents: { hosts: Object.fromEntries(o.agents.map((a) => [a.host.name, {}])) },
      },
    },
  };
}

export interface PlaybookRun {
  code: number;
  output: string;
  recap: Map<string, Record<string, number>>;
}

/**
 * Runs ansible-playbook inside `netns` (the underlay, where the hosts' SSH addresses are), with
 * the repository's ansible.cfg; control sockets and local temp files go to `workDir`.
 */
export function runPlaybook(netns: string, inventoryFile: string, workDir: string, extraArgs: string[] = [], onOutput?: (chunk: string) => void): Promise<PlaybookRun> {
  const args = ['netns', 'exec', netns, 'ansible-playbook', '-i', inventoryFile, join(ROOT, 'ansible/site.yml'), ...extraArgs];
  return new Promise((resolveRun, reject) => {
    const child = spawn('ip', args, {
      cwd: ROOT,
      env: {
        ...process.env,
        ANSIBLE_CONFIG: join(ROOT, 'ansible/ansible.cfg'),
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_SSH_CONTROL_PATH_DIR: join(workDir, 'cp'),
        ANSIBLE_LOCAL_TEMP: join(workDir, 'tmp'),
        ANSIBLE_PERSISTENT_CONTROL_PATH_DIR: join(workDir, 'pcp'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    // The whole log also goes to a file, to follow a slow run: tail -f <workDir>/ansible.log
    const log = (b: Buffer) => {
      output += b.toString();
      onOutput?.(b.toString());
      appendFileSync(join(workDir, 'ansible.log'), b);
    };
    child.stdout.on('data', log);
    child.stderr.on('data', log);
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code: code ?? -1, output, recap: parseRecap(output) }));
  });
}

/** The PLAY RECAP counters per host: `h1 : ok=12 changed=0 unreachable=0 failed=0 ...`. */
export function parseRecap(output: string): Map<string, Record<string, number>> {
  const recap = new Map<string, Record<string, number>>();
  const start = output.lastIndexOf('PLAY RECAP');
  if (start < 0) return recap;
  for (const line of output.slice(start).split('\n').slice(1)) {
    const m = /^(\S+)\s+:\s+(ok=.*)$/.exec(line.trim());
    if (!m) continue;
    const counts: Record<string, number> = {};
    for (const kv of m[2]!.trim().split(/\s+/)) {
      const [k, v] = kv.split('=');
      if (k && v !== undefined) counts[k] = Number(v);
    }
    recap.set(m[1]!, counts);
  }
  return recap;
}

/**
 * A copy of a release under another version, as the next build would be: unpacked, renamed,
 * packed again (quicker than a second build, and the same bits run).
 */
export async function repackRelease(tarball: string, version: string, newVersion: string, dir: string): Promise<string> {
  const stage = join(dir, `repack-${newVersion}`);
  mkdirSync(stage, { recursive: true });
  await run('tar', ['-C', stage, '-xzf', tarball]);
  renameSync(join(stage, `loom-${version}`), join(stage, `loom-${newVersion}`));
  writeFileSync(join(stage, `loom-${newVersion}`, 'VERSION'), `${newVersion}\n`);
  const out = join(dir, `loom-${newVersion}.tar.gz`);
  await run('tar', ['-C', stage, '-czf', out, `loom-${newVersion}`]);
  rmSync(stage, { recursive: true, force: true });
  return out;
}

/** The hosts each task or handler reported on, in output order: what ran when, across batches. */
export function taskEvents(output: string): Array<{ task: string; host: string; status: string }> {
  const events: Array<{ task: string; host: string; status: string }> = [];
  let task = '';
  for (const line of output.split('\n')) {
    const header = /^(?:TASK|RUNNING HANDLER) \[(.+?)\] \*+$/.exec(line);
    if (header) task = header[1]!;
    const result = /^(ok|changed|failed|fatal|skipping): \[([^\]]+)\]/.exec(line);
    if (result && task) events.push({ task, host: result[2]!, status: result[1]! });
  }
  return events;
}

/** The services the roles install (init scripts, pidfiles in loom_run_dir). */
export type LoomService = 'loom-controller' | 'loom-agent' | 'loom-etcd';

/** PID of a daemon the init script started (its pidfile), if it runs. */
export function daemonPid(host: SimHost, service: LoomService): number | undefined {
  const file = join(hostPaths(host).loom_run_dir, `${service}.pid`);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Stops a daemon the roles started, by the PID in its pidfile, after checking that PID runs from
 * this host's directories (so a reused PID is never hit).
 */
export async function stopDaemon(host: SimHost, service: LoomService): Promise<void> {
  const pid = daemonPid(host, service);
  if (!pid || !ownsPid(host, pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (ownsPid(host, pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (ownsPid(host, pid)) process.kill(pid, 'SIGKILL');
}

/** Synchronous variant for process-exit cleanup. */
export function stopDaemonSync(host: SimHost, service: LoomService): void {
  const pid = daemonPid(host, service);
  if (pid && ownsPid(host, pid)) process.kill(pid, 'SIGKILL');
}

function ownsPid(host: SimHost, pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The release's daemons run from the host's install dir, etcd with its config file there.
    return cmdline.includes(join(host.dir, 'root')) && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
