/**
 * loom-agent daemon: config -> OVS -> controller -> local API + HTTP metrics. Exit 2 on bad
 * configuration (a readable line on stderr), 1 on runtime failure, 0 after SIGTERM/SIGINT.
 */
// Start it with UV_THREADPOOL_SIZE=16 or more (bin/loom-agent does): each open netlink socket
// holds a libuv pool thread (see src/netlink), and the variable must be set before Node starts.
import type http from 'node:http';
import { daemonConfig } from '../common/config.js';
import { createLogger } from '../common/logging.js';
import { createMetricsServer, listenHttp } from '../common/metrics-http.js';
import { clientCredentials } from '../common/tls.js';
import { joinHostPort, splitHostPort } from '../common/config.js';
import { LoomClient } from '../api/client.js';
import { HELP, agentTls, loadConfig, type AgentConfig } from './config.js';
import { Agent, type ControllerClients } from './agent.js';
import { prepareHost } from './startup.js';
import { CONTROLLER_CHANNEL_OPTIONS } from './controller-session.js';
import { FailoverClient, homeIndex, parseControllerList } from '../api/failover.js';
import type { Logger } from 'pino';
import { startLocalApi } from './local-api.js';
import { cniHandler } from '../cni/handler.js';
import { createAgentMetrics } from './metrics.js';
import { DEFAULT_UPSTREAM } from './dns/upstream.js';
import { registerDatapathMetrics } from './datapath-counters.js';

async function main(argv: string[]): Promise<number> {
  const config = daemonConfig('loom-agent', HELP, () => loadConfig(argv));
  if (typeof config === 'number') return config;
  const log = createLogger({ name: 'loom-agent', level: config.logLevel });
  let agent: Agent | undefined;
  const metrics = createAgentMetrics(
    () => ({ endpoints: agent?.endpointCount ?? 0, connected: agent?.controllerConnected ?? false }),
    async () => (agent ? agent.policyPacketCounts() : []),
  );
  const servers: http.Server[] = [];
  try {
    const host = await prepareHost(config, log);
    const started = (agent = new Agent(config, host, controllerClients(config, log), log, metrics, undefined, {
      ...DEFAULT_UPSTREAM,
      ...(config.hostNetns ? { netns: config.hostNetns } : {}),
    }));
    registerDatapathMetrics(metrics.registry, started.datapath, (ofport) => started.endpointPorts().get(ofport));
    await agent.start();
    servers.push(await startLocalApi(agent, cniHandler, config.socket, log, metrics));
    if (config.metricsListen) {
      const a = agent;
      const m = createMetricsServer(metrics.registry, () => ({ host: config.hostName, appliedRevision: a.appliedRevision, controllerConnected: a.controllerConnected }));
      await listenHttp(m, config.metricsListen);
      servers.push(m);
    }
  } catch (err) {
    log.fatal({ err }, 'agent failed to start');
    process.stderr.write(`loom-agent: ${(err as Error).message}\n`);
    await agent?.stop().catch(() => undefined);
    return 1;
  }
  const running = agent;
  log.info({ socket: config.socket, metrics: config.metricsListen || 'off' }, 'agent running');
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping; installed flows stay in place');
      for (const s of servers) s.close();
      running.stop().then(() => resolve(0), () => resolve(1));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/**
 * gRPC clients for the controllers' API ports (writes and the agent's reads to the leader, Watch
 * to the home, spread by host name) and, once they name one, the home's Watch port (same host and TLS).
 */
function controllerClients(config: AgentConfig, log: Logger): ControllerClients {
  const tls = clientCredentials(agentTls(config));
  const client = (address: string): LoomClient => new LoomClient(address, { ...tls.options, ...CONTROLLER_CHANNEL_OPTIONS }, tls.credentials);
  const addresses = parseControllerList(config.controller);
  const api = new FailoverClient(addresses, client, {
    home: homeIndex(config.hostName, addresses.length),
    // One controller: fail as before (callers retry); several: an attach waits out a failover.
    ...(addresses.length === 1 ? { failoverMs: 0 } : {}),
    readsAtLeader: true,
    onMove: (target, address, why) => log.warn({ target, controller: address, why }, target === 'leader' ? 'writes go to another controller' : 'Watch goes to another controller'),
  });
  return {
    api,
    watchApi: (port, home) => client(joinHostPort(splitHostPort(home).host, port)),
    home: () => api.set.home,
    homeFailed: (address, why) => api.set.homeFailed(address, why),
  };
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`loom-agent: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
