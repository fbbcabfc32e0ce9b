/**
 * `loom`, the CNI plugin: runtimes (podman, containerd, the kubelet) run it with CNI_* in the
 * environment and the network configuration on stdin; it asks the host's Loom agent to do the
 * work and prints the spec's result or error object. Kept small: it starts for every container.
 */
import { readFileSync } from 'node:fs';
import { callAgent } from './agent-client.js';
import { CNI_VERSION, CniCode, CniError, SUPPORTED_VERSIONS, parseConfig, parseEnv, staticAddresses, toCniResult, type AgentAttachResult } from './spec.js';

const stdin = readStdin();

async function run(): Promise<object | undefined> {
  const env = parseEnv(process.env);
  if (env.command === 'VERSION') return { cniVersion: CNI_VERSION, supportedVersions: SUPPORTED_VERSIONS };
  const conf = parseConfig(stdin);
  switch (env.command) {
    case 'ADD': {
      const r = await callAgent<AgentAttachResult>(conf.agentSocket, 'POST', '/v1/attach', {
        containerId: env.containerId,
        netns: env.netns,
        ifname: env.ifname,
        network: conf.network,
        ...(env.args.K8S_POD_NAME ? { name: env.args.K8S_POD_NAME } : {}),
        ...staticAddresses(env.args),
      });
      return toCniResult(conf.cniVersion, r);
    }
    case 'DEL':
      await callAgent(conf.agentSocket, 'POST', '/v1/detach', { containerId: env.containerId, ifname: env.ifname, network: conf.network });
      return undefined;
    case 'CHECK': {
      const { problems } = await callAgent<{ problems: string[] }>(conf.agentSocket, 'POST', '/v1/check', {
        containerId: env.containerId,
        netns: env.netns,
        ifname: env.ifname,
        network: conf.network,
      });
      if (problems.length) throw new CniError(CniCode.CheckFailed, `container ${env.containerId} differs from what Loom attached`, problems.join('; '));
      return undefined;
    }
    case 'STATUS':
      try {
        await callAgent(conf.agentSocket, 'GET', '/v1/status');
      } catch (err) {
        throw new CniError(CniCode.PluginNotAvailable, (err as Error).message);
      }
      return undefined;
    case 'GC':
      throw new CniError(CniCode.UnsupportedField, 'GC is not implemented by the loom plugin; DEL removes each attachment');
  }
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/** Errors carry the configuration's version when it can be read. */
function cniVersionOf(): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' ? v : CNI_VERSION;
  } catch {
    return CNI_VERSION;
  }
}

run().then(
  (result) => {
    if (result) process.stdout.write(JSON.stringify(result) + '\n');
  },
  (err: unknown) => {
    const e = err instanceof CniError ? err : new CniError(CniCode.IoFailure, (err as Error).message);
    process.stdout.write(JSON.stringify(e.toJSON(cniVersionOf())) + '\n');
    process.exitCode = 1;
  },
);
