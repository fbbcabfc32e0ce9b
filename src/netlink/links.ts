/** Link operations of a Netlink handle. */
import { closeSync, openSync } from 'node:fs';
import { NLM_F_CREATE, NLM_F_EXCL, RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK, RTM_SETLINK } from './codec/constants.js';
import { parseMac } from './codec/ip.js';
import { checkIfname, decodeLink, encodeLinkRequest, encodeVethCreate, type Link, type LinkRequest } from './codec/link.js';
import { NetlinkError } from './errors.js';
import type { LinkRef, Requester } from './requester.js';

export type { Link };

/** One end of a veth pair to create. */
export interface VethEndSpec {
  name: string;
  mtu?: number;
  /** 'aa:bb:cc:dd:ee:ff' */
  mac?: string;
  up?: boolean;
  /** Network namespace file (e.g. /run/netns/c1) to create this end in; the handle's own by default. */
  netns?: string;
}

export interface VethSpec extends VethEndSpec {
  peer: VethEndSpec;
}

function subjectOf(ref: LinkRef): string {
  return String(ref);
}

/** Opens namespace files for IFLA_NET_NS_FD; the kernel resolves the fd in this process. */
function withNetnsFds<T>(r: Requester, operation: string, subject: string, paths: Array<string | undefined>, fn: (fds: Array<number | undefined>) => Promise<T>): Promise<T> {
  const fds: Array<number | undefined> = [];
  try {
    for (const p of paths) {
      if (p === undefined) { fds.push(undefined); continue; }
      try {
        fds.push(openSync(p, 'r'));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new NetlinkError({ errno: Math.abs(e.errno ?? 0), code: e.code ?? 'EIO', operation, subject, netns: r.netns, detail: `cannot open network namespace ${p}`, cause: err });
      }
    }
  } catch (err) {
    for (const fd of fds) if (fd !== undefined) closeSync(fd);
    throw err;
  }
  return fn(fds).finally(() => {
    for (const fd of fds) if (fd !== undefined) closeSync(fd);
  });
}

/** Link settings changed in one request: MAC (text), MTU, up or down. */
export interface LinkChange {
  mac?: string;
  mtu?: number;
  up?: boolean;
}

export class LinkOps {
  constructor(private readonly r: Requester) {}

  /** All links of the namespace. */
  async list(): Promise<Link[]> {
    const msgs = await this.r.dump('link.list', RTM_GETLINK, encodeLinkRequest({}));
    return msgs.map((m) => decodeLink(m.payload));
  }

  /** One link by name or index; NetlinkError ENODEV if absent. */
  get(ref: LinkRef): Promise<Link> {
    return this.r.getLink('link.get', ref);
  }

  /** One link by name or index, or undefined if absent. */
  async find(ref: LinkRef): Promise<Link | undefined> {
    try {
      return await this.r.getLink('link.find', ref);
    } catch (err) {
      if (err instanceof NetlinkError && err.code === 'ENODEV') return undefined;
      throw err;
    }
  }

  /**
   * Creates a veth pair. Each end can be created directly in another namespace
   * (IFLA_NET_NS_FD), which is how a container gets its interface without a later move.
   */
  async createVeth(spec: VethSpec): Promise<void> {
    const op = 'link.createVeth';
    const subject = `${spec.name}<->${spec.peer.name}`;
    const base = this.r.parse(op, subject, () => {
      checkIfname(spec.name);
      checkIfname(spec.peer.name);
      return {
        name: spec.name,
        ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}),
        ...(spec.mac !== undefined ? { mac: parseMac(spec.mac) } : {}),
        ...(spec.up !== undefined ? { up: spec.up } : {}),
        peer: {
          name: spec.peer.name,
          ...(spec.peer.mtu !== undefined ? { mtu: spec.peer.mtu } : {}),
          ...(spec.peer.mac !== undefined ? { mac: parseMac(spec.peer.mac) } : {}),
          ...(spec.peer.up !== undefined ? { up: spec.peer.up } : {}),
        },
      };
    });
    await withNetnsFds(this.r, op, subject, [spec.netns, spec.peer.netns], async ([fd, peerFd]) => {
      const payload = encodeVethCreate({
        ...base,
        ...(fd !== undefined ? { netnsFd: fd } : {}),
        peer: { ...base.peer, ...(peerFd !== undefined ? { netnsFd: peerFd } : {}) },
      });
      await this.r.call(op, subject, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, payload);
    });
  }

  setUp(ref: LinkRef): Promise<void> {
    return this.change('link.setUp', ref, { up: true });
  }

  setDown(ref: LinkRef): Promise<void> {
    return this.change('link.setDown', ref, { up: false });
  }

  setMtu(ref: LinkRef, mtu: number): Promise<void> {
    return this.change('link.setMtu', ref, { mtu });
  }

  setMac(ref: LinkRef, mac: string): Promise<void> {
    return this.change('link.setMac', ref, { mac });
  }

  /** MAC, MTU and up/down in one request (what is given). */
  configure(ref: LinkRef, change: LinkChange): Promise<void> {
    return this.change('link.configure', ref, change);
  }

  /** Renames a link (the kernel refuses while it is up: EBUSY). */
  async rename(ref: LinkRef, newName: string): Promise<void> {
    const op = 'link.rename';
    this.r.parse(op, subjectOf(ref), () => checkIfname(newName));
    const index = await this.r.index(op, ref);
    await this.r.call(op, subjectOf(ref), RTM_SETLINK, 0, encodeLinkRequest({ index, name: newName }));
  }

  /** Moves a link into the namespace at `nsPath` (it arrives down, without addresses). */
  async moveToNetns(ref: LinkRef, nsPath: string): Promise<void> {
    const op = 'link.moveToNetns';
    await withNetnsFds(this.r, op, subjectOf(ref), [nsPath], ([fd]) => this.set(op, ref, { netnsFd: fd as number }));
  }

  /** Deletes a link (for a veth, both ends go). */
  async delete(ref: LinkRef): Promise<void> {
    const op = 'link.delete';
    const payload = this.r.parse(op, subjectOf(ref), () => encodeLinkRequest(typeof ref === 'number' ? { index: ref } : { name: ref }));
    await this.r.call(op, subjectOf(ref), RTM_DELLINK, 0, payload);
  }

  /** Checks and sends what `change` gives (MTU 68..65535, a MAC in text). */
  private change(op: string, ref: LinkRef, change: LinkChange): Promise<void> {
    if (change.mtu !== undefined && (!Number.isInteger(change.mtu) || change.mtu < 68 || change.mtu > 0xffff)) {
      return Promise.reject(this.r.invalid(op, subjectOf(ref), `MTU must be an integer 68..65535, got ${change.mtu}`));
    }
    const mac = change.mac === undefined ? undefined : this.r.parse(op, subjectOf(ref), () => parseMac(change.mac!));
    return this.set(op, ref, {
      ...(mac !== undefined ? { mac } : {}),
      ...(change.mtu !== undefined ? { mtu: change.mtu } : {}),
      ...(change.up !== undefined ? { up: change.up } : {}),
    });
  }

  /** RTM_SETLINK selecting by index, or by name (the kernel looks IFLA_IFNAME up when the index is 0). */
  private async set(op: string, ref: LinkRef, change: Omit<LinkRequest, 'index' | 'name'>): Promise<void> {
    const payload = this.r.parse(op, subjectOf(ref), () =>
      encodeLinkRequest(typeof ref === 'number' ? { index: ref, ...change } : { name: ref, ...change }),
    );
    await this.r.call(op, subjectOf(ref), RTM_SETLINK, 0, payload);
  }
}
