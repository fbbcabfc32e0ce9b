/**
 * OpenFlow 1.3 for Open vSwitch: pure codecs (match, actions, instructions, messages, framing),
 * the printer (ovs-ofctl syntax), the connection and the high-level client.
 */
export * from './types.js';
export * from './consts.js';
export * from './match.js';
export * from './actions.js';
export * from './instructions.js';
export * from './printer.js';
export * from './errors.js';
export * from './messages.js';
export * from './framer.js';
export * from './connection.js';
export * from './flowenc.js';
export * from './client.js';
