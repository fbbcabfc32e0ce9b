/**
 * Glue to node-netlink: makes it adopt a socket created elsewhere (in another namespace).
 *
 * node-netlink's open() creates its socket through po6.socket(), an async syscall on a libuv worker
 * thread, and takes no file descriptor. open() calls po6.socket() synchronously before its first
 * await, so swapping po6.socket for that one call hands it our socket; everything else (bind,
 * polling, sending, sequence matching) is node-netlink's own.
 */
import netlink, { type NetlinkSocketHandle } from 'node-netlink';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { NETLINK_ROUTE } from './codec/constants.js';

interface Po6 {
  socket: (options: { domain: bigint; type: bigint; protocol: bigint }) => Promise<bigint>;
}

/** The very po6 instance node-netlink uses (node-netlink -> po6-socket -> po6), whatever the install layout. */
async function loadNodeNetlinkPo6(): Promise<Po6> {
  const fromNetlink = createRequire(createRequire(import.meta.url).resolve('node-netlink'));
  const fromPo6Socket = createRequire(fromNetlink.resolve('po6-socket'));
  const mod = (await import(pathToFileURL(fromPo6Socket.resolve('po6')).href)) as { default: Po6 };
  return mod.default;
}
const po6 = await loadNodeNetlinkPo6();

/**
 * node-netlink's poller keeps one libuv threadpool thread in ppoll() per open socket (100 ms
 * timeouts). Once open sockets reach the pool size, every async syscall waits for a timeout.
 */
const threadpoolSize = Number(process.env.UV_THREADPOOL_SIZE) || 4;
let openSockets = 0;
let warned = false;

/** Tracks open sockets (+1 on open, -1 on close) and warns once when the threadpool runs out. */
export function countOpenSockets(delta: 1 | -1): void {
  openSockets += delta;
  if (delta === 1 && openSockets >= threadpoolSize && !warned) {
    warned = true;
    process.emitWarning(
      `${openSockets} netlink sockets are open but UV_THREADPOOL_SIZE is ${threadpoolSize}: requests will stall ` +
        'up to 100 ms each. Close handles you do not need, or start the process with a larger UV_THREADPOOL_SIZE.',
      { code: 'NETLINK_THREADPOOL' },
    );
  }
}

/** Has node-netlink adopt an already created socket instead of creating its own. */
export async function adoptWithNodeNetlink(fd: number): Promise<NetlinkSocketHandle> {
  let adopted = false;
  const original = po6.socket;
  po6.socket = () => {
    adopted = true;
    return Promise.resolve(BigInt(fd));
  };
  let opening: Promise<NetlinkSocketHandle>;
  try {
    // open() calls po6.socket() synchronously before its first await.
    opening = netlink.open({ family: NETLINK_ROUTE });
  } finally {
    po6.socket = original;
  }
  if (!adopted) {
    throw new Error('node-netlink did not take the namespaced socket (unsupported node-netlink/po6 version)');
  }
  return opening;
}
