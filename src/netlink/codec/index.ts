/** Pure rtnetlink codec: bytes in, bytes out; no sockets, no namespaces. */
export * from './attrs.js';
export * from './errors.js';
export * from './constants.js';
export * from './ip.js';
export * from './message.js';
export * from './link.js';
export * from './address.js';
export * from './route.js';
export * from './neighbour.js';
