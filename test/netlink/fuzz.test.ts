// Property-based: the rtnetlink decoders, given random bytes or real encodings that were
// truncated, flipped or re-lengthed, return or throw NetlinkDecodeError and nothing else.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import {
  AF_INET, AF_INET6, Attrs, NLM_F_ACK_TLVS, NLMSG_DONE, NLMSG_ERROR, NetlinkDecodeError, decodeAddress, decodeLink,
  decodeMessages, decodeNeighbour, decodeRoute, decodeStatus, encodeAddressRequest, encodeLinkRequest, encodeMessage,
  encodeNeighbourRequest, encodeRouteRequest, encodeVethCreate, parseIp, parseMac, parsePrefix,
} from '../../src/netlink/codec/index.js';
import { mutatedAny, onlyThrows } from '../common/mutate.js';

const link = encodeVethCreate({ name: 'h1', mtu: 1450, mac: parseMac('02:00:00:00:00:01'), peer: { name: 'eth0', netnsFd: 42, up: true } });
const linkByName = encodeLinkRequest({ index: 3, name: 'c1', up: true, mtu: 1450 });
const address4 = encodeAddressRequest({ index: 3, prefix: parsePrefix('198.18.0.2/16'), broadcast: Buffer.from([198, 18, 255, 255]) });
const address6 = encodeAddressRequest({ index: 3, prefix: parsePrefix('fd00::2/64'), noDad: true });
const route = encodeRouteRequest({ family: AF_INET, dst: parsePrefix('10.0.0.0/8'), gateway: parseIp('198.18.0.1'), oif: 3, onLink: true, metric: 5 });
const route6 = encodeRouteRequest({ family: AF_INET6, gateway: parseIp('fd00::1'), oif: 3 });
const neighbour = encodeNeighbourRequest({ index: 3, address: parseIp('fd00::1'), mac: parseMac('02:00:00:00:00:09') });

/** NLMSG_ERROR with the request's header echoed and an extended-ack message, as the kernel sends. */
const extack = Buffer.concat([
  Buffer.from([0xea, 0xff, 0xff, 0xff]), // -22
  encodeMessage({ type: 16, flags: 5, seq: 1, pid: 0 }, Buffer.alloc(0)),
  Buffer.from([0x0c, 0x00, 0x01, 0x00]), Buffer.from('bad mtu\0'),
]);
const error = encodeMessage({ type: NLMSG_ERROR, flags: NLM_F_ACK_TLVS, seq: 1, pid: 0 }, extack);
const done = encodeMessage({ type: NLMSG_DONE, flags: NLM_F_ACK_TLVS, seq: 2, pid: 0 }, extack.subarray(0, 4));
const datagram = Buffer.concat([encodeMessage({ type: 16, flags: 2, seq: 1, pid: 0 }, link), error, done]);

const RUNS = { numRuns: 300, seed: 18 };
const check = (valids: Buffer[], decode: (b: Buffer) => unknown): void =>
  fc.assert(fc.property(mutatedAny(valids), (b) => onlyThrows([NetlinkDecodeError], () => decode(b))), RUNS);

describe('rtnetlink decoders (property-based)', () => {
  it('decodeMessages and decodeStatus', () => {
    check([datagram, error, done], (b) => {
      for (const m of decodeMessages(b)) decodeStatus(m);
    });
  });
  it('Attrs.parse, nested', () => {
    check([link.subarray(16), address4.subarray(8)], (b) => {
      const a = Attrs.parse(b);
      for (let t = 0; t < 64; t++) if (a.has(t)) onlyThrows([NetlinkDecodeError], () => a.nested(t));
    });
  });
  it('decodeLink', () => check([link, linkByName], decodeLink));
  it('decodeAddress', () => check([address4, address6], decodeAddress));
  it('decodeRoute', () => check([route, route6], decodeRoute));
  it('decodeNeighbour', () => check([neighbour], decodeNeighbour));
});
