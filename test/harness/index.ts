// The shared test harness: simulated OVS hosts in network namespaces, containers, an underlay.
export { startHost, SimHost, type HostOptions, type BridgeOptions } from './host.js';
export { Container } from './container.js';
export { createUnderlay, Underlay, type UnderlayLink } from './underlay.js';
export { run, waitFor, alive } from './exec.js';
