// sshd inside a simulated host's namespace, so Ansible reaches the host over SSH on its underlay
// address exactly as it reaches a real machine. Keys and config live in the host's temp dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, waitFor, alive, type SimHost } from '../harness/index.js';

/** A client key pair and the authorized_keys file every test sshd trusts. */
export interface ClientKey {
  privateKey: string;
  authorizedKeys: string;
}

export async function generateClientKey(dir: string): Promise<ClientKey> {
  mkdirSync(dir, { recursive: true });
  const privateKey = join(dir, 'id_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'loom-ansible-test', '-f', privateKey]);
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, readFileSync(`${privateKey}.pub`), { mode: 0o600 });
  return { privateKey, authorizedKeys };
}

export class SshServer {
  private stderr = '';

  constructor(
    readonly host: SimHost,
    readonly address: string,
    readonly config: string,
    private readonly proc: ChildProcess,
    /** The line for a known_hosts file. */
    readonly knownHostsLine: string,
  ) {
    proc.stderr?.on('data', (b: Buffer) => (this.stderr += b.toString()));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get log(): string {
    return this.stderr;
  }

  /**
   * Stops the session processes sshd forked (by PID, found through /proc parent links) and then
   * sshd itself; ssh connections kept open by Ansible's ControlPersist end with them.
   */
  async stop(): Promise<void> {
    if (!alive(this.pid)) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    for (const pid of descendants(this.pid).reverse()) killQuietly(pid);
    this.proc.kill('SIGTERM');
    await exited;
  }

  /** Synchronous variant for process-exit cleanup. */
  stopSync(): void {
    if (!alive(this.pid) || !readCmdline(this.pid).includes(this.config)) return;
    for (const pid of descendants(this.pid).reverse()) killQuietly(pid, 'SIGKILL');
    killQuietly(this.pid, 'SIGKILL');
  }
}

const servers = new Set<SshServer>();
let exitHook = false;

/**
 * Starts sshd in `host`'s namespace listening on `address`:22, root login with the client key
 * only, a host key generated for it. Resolves when it accepts connections.
 */
export async function startSshd(host: SimHost, address: string, key: ClientKey): Promise<SshServer> {
  const dir = join(host.dir, 'ssh');
  mkdirSync(dir, { recursive: true });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', host.name, '-f', hostKey]);
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `ListenAddress ${address}:22`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${key.authorizedKeys}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      // No PAM stack and no owner checks on the shared temp directories: only the key matters.
      'UsePAM no',
      'StrictModes no',
      'MaxSessions 50',
      'MaxStartups 50:30:100',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  // sshd refuses to start without its privilege separation directory (the package creates it
  // only when its service starts).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const proc = spawn('ip', ['netns', 'exec', host.netns, '/usr/sbin/sshd', '-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (proc.pid === undefined) throw new Error(`could not start sshd in ${host.netns}`);
  const server = new SshServer(host, address, config, proc, `${address} ${readFileSync(`${hostKey}.pub`, 'utf8').trim()}`);
  servers.add(server);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const s of servers) s.stopSync();
    });
  }
  proc.once('exit', () => servers.delete(server));
  await waitFor(
    `sshd on ${host.name} ${address}:22`,
    async () => {
      if (!alive(proc.pid!)) throw new Error(`sshd exited: ${server.log}`);
      await host.exec('nc', ['-z', '-w', '1', address, '22']);
      return true;
    },
    15_000,
    100,
  );
  return server;
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** Every process below `root` in the process tree, parents before children. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGTERM'): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}
