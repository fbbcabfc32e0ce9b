/** Socket-level numbers for the netlink transport (sys/socket.h, linux/netlink.h). */
import { NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_ROUTE, SOL_NETLINK } from './codec/constants.js';

const AF_NETLINK = 16n;
const SOCK_RAW = 3n;
const SOCK_CLOEXEC = 0x80000n;

/** socket() arguments for a close-on-exec NETLINK_ROUTE socket. */
export const AF_NETLINK_SOCKET: [bigint, bigint, bigint] = [AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, BigInt(NETLINK_ROUTE)];

/** Extended acks carry the kernel's reason text; capped acks do not echo the request back. */
export const netlinkSocketOptions: Array<[number, number, number]> = [
  [SOL_NETLINK, NETLINK_EXT_ACK, 1],
  [SOL_NETLINK, NETLINK_CAP_ACK, 1],
];
