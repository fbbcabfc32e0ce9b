/**
 * loom-controller daemon: config -> store -> controller -> gRPC + HTTP. Exit 2 on bad
 * configuration (a readable line on stderr), 1 on runtime failure, 0 after SIGTERM/SIGINT.
 */
import type * as http from 'node:http';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { daemonConfig, splitHostPort } from '../common/config.js';
import { createLogger } from '../common/logging.js';
import { controllerTls, exposedWithoutAuth, HELP, loadConfig, mutualTls } from './config.js';
import { Authorizer } from './authz.js';
import { serverCredentials } from '../common/tls.js';
import { Controller } from './controller.js';
import { createMetricsServer, listenHttp } from '../common/metrics-http.js';
import { createMetrics } from './metrics.js';
import { Convergence } from './convergence.js';
import { apiHandlers, createGrpcServer, listen } from './server.js';
import { SqliteStore } from './store/sqlite.js';
import { EtcdStore } from './store/etcd.js';
import { StoreError, type Store } from './store/types.js';
import { WatchHub } from './watch.js';
import { TraceRelay } from './trace-relay.js';
import { createWatchServer } from './watch-server.js';
import type { GrpcStreamServer } from '../http2/grpc-server.js';

async function main(argv: string[]): Promise<number> {
  const config = daemonConfig('loom-controller', HELP, () => loadConfig(argv));
  if (typeof config === 'number') return config;
  const logger = createLogger({ name: 'loom-controller', level: config.logLevel });
  let store: Store;
  try {
    if (config.store === 'etcd') {
      store = await EtcdStore.open({
        endpoints: config.etcdEndpoints,
        prefix: config.etcdPrefix,
        tls: config.etcdCa ? { ca: config.etcdCa, cert: config.etcdCert, key: config.etcdKey } : undefined,
        maxTxnOps: config.etcdMaxTxnOps,
        election: config.etcdElectAs ? { address: config.etcdElectAs, ttlSeconds: config.etcdLeaseTtl } : undefined,
      });
    } else {
      if (config.dbPath !== ':memory:') mkdirSync(path.dirname(config.dbPath), { recursive: true });
      store = new SqliteStore({ path: config.dbPath, sync: config.sync });
    }
  } catch (err) {
    process.stderr.write(`loom-controller: ${err instanceof StoreError ? err.message : (err as Error).message}\n`);
    return 2;
  }
  const controller = await Controller.open(store, {
    hostDownAfterMs: config.hostDownAfterMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    changeLogSize: config.changeLogSize,
    storeHistory: config.storeHistory,
    logger,
  });
  let metrics: ReturnType<typeof createMetrics> | null = null;
  const convergence = new Convergence(controller, {
    onAckLatency: (s) => metrics?.propagation.observe(s),
  });
  let watchServer: GrpcStreamServer | null = null;
  metrics = createMetrics(controller, convergence, () => watchServer && { connections: watchServer.connections, streams: watchServer.streams, limitsHit: watchServer.limitsHit });
  const m = metrics;
  const onRequest = (method: string, code: string): void => m.requests.inc({ method, code });
  let watchPort = 0;
  const hub = new WatchHub(controller, {
    maxMessageBytes: config.maxMessageBytes,
    coalesceMs: config.coalesceMs,
    quietMs: config.quietMs,
    ackTimeoutMs: config.ackTimeoutMs,
    logger,
    onProgress: (batch) => convergence.report(batch),
  });
  // Several controllers: agents streaming to another one are asked through the store's mailbox.
  const mailbox = controller.store.mailbox;
  const relay = mailbox && new TraceRelay(mailbox, { connected: (host) => hub.session(host) !== undefined, ask: (host, req, ms) => hub.traces.ask(host, req, ms) }, logger);
  const api = apiHandlers(controller, convergence, () => watchPort, relay ?? hub.traces);
  const authorizer = new Authorizer(
    { mutualTls: mutualTls(config), operatorOrganization: config.operatorOrganization, agentIdentity: config.agentIdentity },
    {
      endpointHost: (network, containerId) => controller.findEndpoint(network, containerId)?.host,
      host: (name) => controller.findHost(name),
    },
  );
  const server = createGrpcServer(api, hub, { logger, maxReceiveBytes: config.maxReceiveBytes, onRequest, authorizer });
  let grpcPort: number;
  let httpServer: http.Server | null = null;
  let httpPort = 0;
  try {
    grpcPort = await listen(server, config.listen, serverCredentials(controllerTls(config)));
    if (config.watchListen) {
      watchServer = createWatchServer(hub, {
        logger,
        maxReceiveBytes: config.maxReceiveBytes,
        maxConnectionsPerPeer: config.maxConnectionsPerPeer,
        tls: controllerTls(config),
        onStarted: () => onRequest('Watch', 'OK'),
        authorizer,
      });
      const { host, port } = splitHostPort(config.watchListen);
      watchPort = await watchServer.listen(host, port);
    }
    if (config.metricsListen) {
      httpServer = createMetricsServer(metrics.registry, () => ({ revision: controller.revision() }));
      httpPort = await listenHttp(httpServer, config.metricsListen);
    }
  } catch (err) {
    logger.fatal({ err }, 'cannot listen');
    process.stderr.write(`loom-controller: cannot listen: ${(err as Error).message}\n`);
    return 1;
  }
  // Host liveness counts from now: before this no agent could reach the controller.
  controller.start();
  const tls = config.tlsCert ? (config.tlsClientCa ? 'mutual' : 'server') : 'off';
  logger.info(
    { grpcPort, watchPort, httpPort, listen: config.listen, watchListen: config.watchListen, tls, store: config.store, ...(config.store === 'etcd' ? { etcd: config.etcdEndpoints, prefix: config.etcdPrefix, storeId: store.id() } : { db: config.dbPath, sync: config.sync }), revision: controller.revision() },
    'loom-controller ready',
  );
  const exposed = exposedWithoutAuth(config);
  if (exposed.length > 0) {
    logger.warn({ exposed, insecureListenAny: true }, 'no mutual TLS on a non-loopback address: anyone who reaches these ports may change networks, hosts and endpoints');
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping');
      const done = (): void => {
        httpServer?.close();
        controller.close().then(
          () => resolve(0),
          () => resolve(1),
        );
      };
      relay?.stop();
      hub.shutdown(); // Watch streams never end by themselves; unary calls in flight may finish
      void watchServer?.close(1000);
      const timer = setTimeout(() => {
        server.forceShutdown();
        done();
      }, 5000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        done();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Flush logs, then leave even if a stray handle (keepalive timer) lingers.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    process.stderr.write(`loom-controller: fatal: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
