/**
 * The one ethtool setting container plumbing needs, through the SIOCETHTOOL ioctl (ethtool has no
 * rtnetlink form): transmit checksum offload. Software datapaths such as Open vSwitch's userspace
 * datapath forward frames whose checksum a veth left for "hardware" to fill in, and TCP then fails.
 */
import sys from 'syscall-napi';
import b2a from 'buffer2address';
import { inNetns } from './netns.js';
import { NetlinkError, errnoFromText, errnoName } from './errors.js';

const AF_INET = 2n;
const SOCK_DGRAM_CLOEXEC = 2n | 0o2000000n;
const SIOCETHTOOL = 0x8946n;
const ETHTOOL_GTXCSUM = 0x16;
const ETHTOOL_STXCSUM = 0x17;
const IFNAMSIZ = 16;

function ethtool(netns: string, ifname: string, cmd: number, data: number, operation: string): number {
  if (Buffer.byteLength(ifname) >= IFNAMSIZ) throw new RangeError(`interface name too long: ${ifname}`);
  // struct ethtool_value { u32 cmd; u32 data; } and struct ifreq { char name[16]; void *data; ... }
  const value = Buffer.alloc(8);
  value.writeUInt32LE(cmd, 0);
  value.writeUInt32LE(data, 4);
  const ifreq = Buffer.alloc(40);
  ifreq.write(ifname, 0, 'utf8');
  ifreq.writeBigUInt64LE(b2a.buffer2address(value), IFNAMSIZ);
  return inNetns(netns, () => {
    const fd = sys.syscall.sync(sys.__NR_socket, AF_INET, SOCK_DGRAM_CLOEXEC, 0n);
    try {
      sys.syscall.sync(sys.__NR_ioctl, fd, SIOCETHTOOL, ifreq);
    } catch (err) {
      const errno = err instanceof Error ? errnoFromText(err.message) : 0;
      throw new NetlinkError({ errno, code: errno ? errnoName(errno) : 'EIO', operation, subject: ifname, netns, cause: err });
    } finally {
      sys.syscall.sync(sys.__NR_close, fd);
    }
    return value.readUInt32LE(4);
  });
}

/** Turns transmit checksum offload (and with it TSO) on or off, like `ethtool -K IF tx on|off`. */
export function setTxChecksum(netns: string, ifname: string, on: boolean): void {
  ethtool(netns, ifname, ETHTOOL_STXCSUM, on ? 1 : 0, 'ethtool.setTxChecksum');
}

export function getTxChecksum(netns: string, ifname: string): boolean {
  return ethtool(netns, ifname, ETHTOOL_GTXCSUM, 0, 'ethtool.getTxChecksum') !== 0;
}
