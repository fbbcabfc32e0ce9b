// The CNI plugin's logic, run inside the agent: the `loom` binary (src/cni/shim/loom.c) forwards
// the runtime's environment and stdin here and prints what this returns. Keeping the plugin a
// thin forwarder saves a Node.js start-up (80-100 ms) per container.
import { MAX_CNI_REQUEST_BYTES, type CniBackend, type CniHandler, type CniReply } from '../api/local.js';
import { netnsPathProblem } from '../netlink/netns.js';
import { CNI_VERSION, CniCode, CniError, SUPPORTED_VERSIONS, endpointLabels, parseConfig, parseEnv, staticAddresses, toCniResult, type NetConf } from './spec.js';

export async function handleCni(env: Record<string, string | undefined>, stdin: string, backend: CniBackend): Promise<CniReply> {
  const command = env.CNI_COMMAND ?? '';
  try {
    const result = await run(env, stdin, backend);
    return { exitCode: 0, stdout: result ? JSON.stringify(result) + '\n' : '', command };
  } catch (err) {
    const e = toCniError(err);
    return { exitCode: 1, stdout: JSON.stringify(e.toJSON(cniVersionOf(stdin))) + '\n', command };
  }
}

async function run(rawEnv: Record<string, string | undefined>, stdin: string, backend: CniBackend): Promise<object | undefined> {
  const env = parseEnv(rawEnv);
  if (env.command === 'VERSION') return { cniVersion: CNI_VERSION, supportedVersions: SUPPORTED_VERSIONS };
  const conf = parseConfig(stdin);
  switch (env.command) {
    case 'ADD': {
      await checkNetns(env.netns);
      const r = await backend.attach({
        containerId: env.containerId,
        netns: env.netns,
        ifname: env.ifname,
        network: conf.network,
        ...(env.args.K8S_POD_NAME ? { name: env.args.K8S_POD_NAME } : {}),
        ...staticAddresses(env.args),
        ...(conf.portMappings.length > 0 ? { ports: conf.portMappings } : {}),
        ...(conf.dns ? { dns: conf.dns } : {}),
        ...(conf.aliases ? { aliases: conf.aliases } : {}),
        ...(env.args.HOSTNAME ? { hostname: env.args.HOSTNAME } : {}),
        ...labelsOf(conf, env.args),
      });
      return toCniResult(conf.cniVersion, r);
    }
    case 'DEL':
      await backend.detach({ containerId: env.containerId, ifname: env.ifname, network: conf.network });
      return undefined;
    case 'CHECK': {
      await checkNetns(env.netns);
      const problems = await backend.check({ containerId: env.containerId, netns: env.netns, ifname: env.ifname, network: conf.network });
      if (problems.length) throw new CniError(CniCode.CheckFailed, `container ${env.containerId} differs from what Loom attached`, problems.join('; '));
      return undefined;
    }
    case 'STATUS':
      try {
        backend.ready();
      } catch (err) {
        throw new CniError(CniCode.PluginNotAvailable, (err as Error).message);
      }
      return undefined;
    case 'GC': {
      // CNI 1.1: remove this network's attachments the runtime no longer knows.
      // Without the list nothing is known to be stale: refuse rather than remove everything.
      if (!conf.validAttachments) throw new CniError(CniCode.InvalidConfig, 'GC needs "cni.dev/valid-attachments" in the network configuration');
      const valid = new Set(conf.validAttachments.map((a) => `${a.containerID}/${a.ifname}`));
      for (const a of backend.attachments(conf.network)) {
        if (!valid.has(`${a.containerId}/${a.ifname}`)) await backend.detach({ containerId: a.containerId, ifname: a.ifname, network: conf.network });
      }
      return undefined;
    }
  }
}

/** CNI_NETNS must name a network namespace; anything else is refused before it is opened. */
async function checkNetns(path: string): Promise<void> {
  const problem = await netnsPathProblem(path);
  if (problem !== null) throw new CniError(CniCode.InvalidEnvironment, `CNI_NETNS ${JSON.stringify(path)} ${problem.reason}`);
}

/** Agent failures become CNI errors: "unavailable" asks the runtime to retry (code 11). */
function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const status = typeof err === 'object' && err !== null ? (err as { status?: unknown }).status : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (status === 'unavailable') return new CniError(CniCode.TryAgainLater, message, 'unavailable');
  if (typeof status === 'string') return new CniError(CniCode.AgentRefused, message, status);
  return new CniError(CniCode.IoFailure, message);
}

/** Errors carry the configuration's version when it can be read. */
function cniVersionOf(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' ? v : CNI_VERSION;
  } catch {
    return CNI_VERSION;
  }
}

/** What the agent's local API runs for the plugin. */
export const cniHandler: CniHandler = {
  handle: handleCni,
  tooLarge: () => ({
    exitCode: 1,
    stdout:
      JSON.stringify(
        new CniError(CniCode.InvalidConfig, `the CNI request is over the limit of ${MAX_CNI_REQUEST_BYTES} bytes`, 'shorten the network configuration (prevResult included)').toJSON(CNI_VERSION),
      ) + '\n',
    command: '',
  }),
};

function labelsOf(conf: NetConf, args: Record<string, string>): { labels?: Record<string, string> } {
  const labels = endpointLabels(conf, args);
  return Object.keys(labels).length > 0 ? { labels } : {};
}
