/**
 * Synchronous network-namespace switching for the calling thread.
 *
 * setns() changes the namespace of the calling thread only. Everything done between the two
 * setns() calls here is synchronous on this thread, so no other JavaScript (and no libuv worker)
 * observes the foreign namespace, and the original namespace is restored on every path.
 * (Files are opened by libuv, which always sets O_CLOEXEC.)
 */
import { closeSync, constants as fsConstants, openSync, readSync, statSync, writeSync } from 'node:fs';
import { open, stat, statfs } from 'node:fs/promises';
import sys from 'syscall-napi';
import { AF_NETLINK_SOCKET, netlinkSocketOptions } from './sockopts.js';
import { errnoFromText, errnoName, NetlinkError } from './errors.js';

const CLONE_NEWNET = 0x40000000n;
/** The calling thread's own namespace (not the thread group leader's, unlike /proc/self). */
export const OWN_NETNS = '/proc/thread-self/ns/net';

/** statfs f_type of the namespace filesystem (linux/magic.h). */
export const NSFS_MAGIC = 0x6e736673;
/** ioctl NS_GET_NSTYPE (linux/nsfs.h): the CLONE_NEW* type of a namespace file. */
const NS_GET_NSTYPE = 0xb703n;

/** Why a path is not a network namespace file; `certain` is false when it could not be examined. */
export interface NetnsPathProblem {
  reason: string;
  certain: boolean;
}

/** Device number of nsfs (one superblock holds every namespace file), learned from our own. */
let nsfsDevice: number | undefined;
function nsfsDev(): number | undefined {
  try {
    nsfsDevice ??= statSync(OWN_NETNS).dev;
  } catch {
    // no /proc: every check takes the slow path
  }
  return nsfsDevice;
}

/**
 * Why `path` is not a network namespace file, or null when it is one. The path is only opened
 * once statfs shows it lives on nsfs: a FIFO, device or socket given by mistake is never opened,
 * so it cannot block the caller. Only the first stat runs on the thread pool (any path may sit
 * on a slow filesystem); a file on nsfs, known by its device, is examined on the calling
 * thread, as nsfs never waits.
 */
export async function netnsPathProblem(path: string): Promise<NetnsPathProblem | null> {
  const certain = (reason: string) => ({ reason, certain: true });
  const unknown = (err: unknown) => ({ reason: `cannot be examined (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, certain: false });
  if (!path.startsWith('/')) return certain('is not an absolute path');
  let onNsfs: boolean;
  try {
    const st = await stat(path);
    const kind = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'device' : 'special file';
    if (kind !== 'file') return certain(`is a ${kind}, not a network namespace`);
    onNsfs = st.dev === nsfsDev();
    if (!onNsfs && (await statfs(path)).type !== NSFS_MAGIC) return certain('is a regular file, not a network namespace (not on nsfs)');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? certain('does not exist') : unknown(err);
  }
  const nstype = (fd: number) => BigInt(sys.syscall.sync(sys.__NR_ioctl, BigInt(fd), NS_GET_NSTYPE));
  const verdict = (type: bigint) => (type === CLONE_NEWNET ? null : certain('is a namespace of another kind, not a network namespace'));
  const failed = (err: unknown) => ((err as NodeJS.ErrnoException).code === 'ENOENT' ? certain('does not exist') : unknown(err));
  if (onNsfs) {
    let fd: number | undefined;
    try {
      fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      return verdict(nstype(fd));
    } catch (err) {
      return failed(err);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    return verdict(nstype(handle.fd));
  } catch (err) {
    return failed(err);
  } finally {
    await handle?.close();
  }
}

/** Inode of a network namespace file; equal inodes mean the same namespace. */
export function netnsInode(path: string = OWN_NETNS): number {
  return statSync(path).ino;
}

function fsError(err: unknown, operation: string, netns: string, subject?: string): NetlinkError {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  const errno = Math.abs((err as NodeJS.ErrnoException).errno ?? 0);
  return new NetlinkError({ errno, code, operation, netns, ...(subject ? { subject } : {}), cause: err });
}

function syscallErrno(err: unknown): number {
  return err instanceof Error ? errnoFromText(err.message) : 0;
}

/**
 * Runs `fn` synchronously with the calling thread inside the namespace at `nsPath`
 * (e.g. /run/netns/NAME or /proc/PID/ns/net). An empty path runs `fn` in place.
 */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  if (nsPath === '') return fn();
  let target: number;
  try {
    target = openSync(nsPath, fsConstants.O_RDONLY);
  } catch (err) {
    throw fsError(err, 'netns.open', nsPath);
  }
  let own: number | undefined;
  try {
    own = openSync(OWN_NETNS, fsConstants.O_RDONLY);
    try {
      sys.syscall.sync(sys.__NR_setns, BigInt(target), CLONE_NEWNET);
    } catch (err) {
      const errno = syscallErrno(err);
      // EINVAL from setns(CLONE_NEWNET) means the file is not a network namespace.
      throw new NetlinkError({
        errno,
        code: errno ? errnoName(errno) : 'EINVAL',
        operation: 'netns.enter',
        netns: nsPath,
        ...(errno === 22 ? { detail: 'not a network namespace file' } : {}),
        cause: err,
      });
    }
    let result: T;
    try {
      result = fn();
    } finally {
      restore(own);
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      throw new TypeError('inNetns() takes a synchronous function; async work would run in the wrong namespace');
    }
    return result;
  } finally {
    if (own !== undefined) closeSync(own);
    closeSync(target);
  }
}

function restore(ownFd: number): void {
  try {
    sys.syscall.sync(sys.__NR_setns, BigInt(ownFd), CLONE_NEWNET);
  } catch (err) {
    // Continuing in a foreign namespace would silently misconfigure the host: stop loudly.
    process.stderr.write(`netlink: cannot return to the original network namespace: ${String(err)}\n`);
    process.abort();
  }
}

/** Creates a NETLINK_ROUTE socket (close-on-exec, extended acks on) that lives in `nsPath`. */
export function openRouteSocketIn(nsPath: string): number {
  const fd = inNetns(nsPath, () => {
    try {
      return Number(sys.syscall.sync(sys.__NR_socket, ...AF_NETLINK_SOCKET));
    } catch (err) {
      const errno = syscallErrno(err);
      throw new NetlinkError({ errno, code: errno ? errnoName(errno) : 'EIO', operation: 'socket.open', netns: nsPath, cause: err });
    }
  });
  try {
    for (const [level, name, value] of netlinkSocketOptions) {
      const v = Buffer.alloc(4);
      v.writeUInt32LE(value, 0);
      sys.syscall.sync(sys.__NR_setsockopt, BigInt(fd), BigInt(level), BigInt(name), v, 4n);
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/** Checks a sysctl key like 'net/ipv6/conf/eth0/accept_dad' (only per-namespace net/ keys). */
function sysctlPath(key: string): string {
  if (!/^net\/[A-Za-z0-9_./@:-]+$/.test(key) || key.split('/').includes('..')) {
    throw new TypeError(`sysctl key must be a per-namespace path under net/, got '${key}'`);
  }
  return `/proc/sys/${key}`;
}

/** Writes a sysctl of the namespace at `nsPath`: opened inside the namespace, written after return. */
export function writeSysctl(nsPath: string, key: string, value: string): void {
  const path = sysctlPath(key);
  const fd = inNetns(nsPath, () => {
    try {
      return openSync(path, fsConstants.O_WRONLY);
    } catch (err) {
      throw fsError(err, 'sysctl.write', nsPath, key);
    }
  });
  try {
    writeSync(fd, `${value}\n`);
  } catch (err) {
    throw fsError(err, 'sysctl.write', nsPath, `${key}=${value}`);
  } finally {
    closeSync(fd);
  }
}

/** Reads a sysctl of the namespace at `nsPath` (trimmed). */
export function readSysctl(nsPath: string, key: string): string {
  const path = sysctlPath(key);
  const fd = inNetns(nsPath, () => {
    try {
      return openSync(path, fsConstants.O_RDONLY);
    } catch (err) {
      throw fsError(err, 'sysctl.read', nsPath, key);
    }
  });
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, null);
    return buf.toString('utf8', 0, n).trim();
  } finally {
    closeSync(fd);
  }
}
