/**
 * OVSDB (RFC 7047) client: typed values, JSON-RPC framing, transports, the client, a monitor-fed
 * table cache, a reconnecting session and Open_vSwitch schema helpers. Knows nothing of Loom.
 */
export * from './values.js';
export * from './schema.js';
export * from './operations.js';
export * from './errors.js';
export * from './updates.js';
export * from './transport.js';
export * from './client.js';
export * from './cache.js';
export * from './session.js';
export * from './vswitch.js';
export { JsonStreamParser, FramingError } from './jsonrpc/parser.js';
export { ProtocolError } from './jsonrpc/messages.js';
