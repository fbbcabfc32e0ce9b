/** Errors raised by the netlink library. */
import { getSystemErrorMap } from 'node:util';

const errnoTable = getSystemErrorMap();

/** Errno name (e.g. 'ENODEV') for a positive errno. */
export function errnoName(errno: number): string {
  return errnoTable.get(-errno)?.[0] ?? `E${errno}`;
}

/** Human text for a positive errno (libuv's wording, e.g. 'no such device'). */
export function errnoText(errno: number): string {
  return errnoTable.get(-errno)?.[1] ?? `errno ${errno}`;
}

/** Errno for a strerror() text as thrown by syscall-napi (which only gives the text). */
export function errnoFromText(text: string): number {
  const wanted = text.toLowerCase();
  for (const [neg, [, msg]] of errnoTable) if (msg.toLowerCase() === wanted) return -neg;
  return 0;
}

export interface NetlinkErrorDetails {
  /** Positive errno; 0 when the failure was not a kernel error (e.g. a timeout in user space). */
  errno: number;
  /** Errno name such as 'ENODEV', 'EEXIST', 'ETIMEDOUT', 'EINVAL'. */
  code: string;
  /** Operation, e.g. 'link.setMtu', 'address.add', 'netns.enter'. */
  operation: string;
  /** What the operation was applied to: interface name/index, prefix, route... */
  subject?: string;
  /** Network namespace path the handle is bound to ('' for the caller's own). */
  netns: string;
  /** Why, in words: the kernel's extended-ack text, or the reason an input was rejected. */
  detail?: string;
  cause?: unknown;
}

/** A failed netlink operation. Branch on `code`; the message is meant for operators. */
export class NetlinkError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly operation: string;
  readonly subject?: string;
  readonly netns: string;
  readonly detail?: string;

  constructor(d: NetlinkErrorDetails) {
    const where = [d.subject ? `'${d.subject}'` : '', d.netns ? `in netns ${d.netns}` : ''].filter(Boolean).join(' ');
    const what = d.errno ? `${d.code} (${errnoText(d.errno)})` : d.code;
    const kernel = d.detail ? `: ${d.detail}` : '';
    super(`${d.operation}${where ? ` ${where}` : ''} failed: ${what}${kernel}`, d.cause === undefined ? undefined : { cause: d.cause });
    this.name = 'NetlinkError';
    this.errno = d.errno;
    this.code = d.code;
    this.operation = d.operation;
    if (d.subject !== undefined) this.subject = d.subject;
    this.netns = d.netns;
    if (d.detail !== undefined) this.detail = d.detail;
  }

  /** Builds an error from a positive errno. */
  static fromErrno(errno: number, rest: Omit<NetlinkErrorDetails, 'errno' | 'code'>): NetlinkError {
    return new NetlinkError({ ...rest, errno, code: errnoName(errno) });
  }
}
