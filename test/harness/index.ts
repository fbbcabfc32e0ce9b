// The shared test harness: simulated OVS hosts in network namespaces, containers, an underlay.
export { startHost, freeLoopbackPort, SimHost, LOOM_VSWITCHD_ARGS, type HostOptions, type BridgeOptions } from './host.js';
export { Container, tcpTransfer } from './container.js';
export { createUnderlay, Underlay, type UnderlayLink } from './underlay.js';
export { run, waitFor, alive } from './exec.js';
export { startAgent, AgentProcess, cniBinDir, cniPluginPath, runCni, cniEnv, type AgentOptions, type CniResult } from './loom.js';
export { startCluster, seedTunnelNeighbours, attachContainer, type Cluster, type ClusterOptions } from './cluster.js';
export { startController, type TestController } from './controller.js';
export { startDaemon, tempDir, type Daemon } from './controller-daemon.js';
export { createOutside, holdEchoConnection, Outside, startEchoServer, stopEchoServer, type HeldConnection } from './outside.js';
