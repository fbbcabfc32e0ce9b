/**
 * rtnetlink for Node.js: links, addresses, routes, neighbours and sysctls in any network
 * namespace, over node-netlink. Knows nothing of containers or overlays.
 */
export { Netlink, SysctlOps, type NetlinkOptions } from './netlink.js';
export { NetlinkError, type NetlinkErrorDetails } from './errors.js';
export type { LinkRef } from './requester.js';
export type { Link, VethSpec, VethEndSpec } from './links.js';
export type { Address, AddressOptions, AddressFilter } from './addresses.js';
export type { Route, RouteSpec, RouteFilter } from './routes.js';
export type { Neighbour, NeighbourFilter } from './neighbours.js';
export { inNetns, netnsInode, OWN_NETNS } from './netns.js';
export { RtnetlinkSocket, TransportError, type Reply, type RtnetlinkTransport, type SocketOptions } from './socket.js';
export { BlockingRtnetlinkSocket } from './blocking-socket.js';
export * as codec from './codec/index.js';
