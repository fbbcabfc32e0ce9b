/** Neighbour (static ARP / NDP entry) operations of a Netlink handle. */
import { AF_INET, AF_INET6, AF_UNSPEC, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NUD_PERMANENT, RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH } from './codec/constants.js';
import { parseIp, parseMac } from './codec/ip.js';
import { decodeNeighbour, encodeNeighbourDump, encodeNeighbourRequest, type Neighbour } from './codec/neighbour.js';
import type { LinkRef, Requester } from './requester.js';

export type { Neighbour };

export interface NeighbourFilter {
  link?: LinkRef;
  family?: 4 | 6;
}

export class NeighbourOps {
  constructor(private readonly r: Requester) {}

  /** Adds a permanent entry ip -> mac on a link; EEXIST if one exists for ip. */
  add(link: LinkRef, ip: string, mac: string): Promise<void> {
    return this.change('neighbour.add', RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, link, ip, mac);
  }

  /** Adds or overwrites the permanent entry for ip. */
  replace(link: LinkRef, ip: string, mac: string): Promise<void> {
    return this.change('neighbour.replace', RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, link, ip, mac);
  }

  /** Removes the entry for ip on a link. */
  delete(link: LinkRef, ip: string): Promise<void> {
    return this.change('neighbour.delete', RTM_DELNEIGH, 0, link, ip, undefined);
  }

  /** Neighbour entries, optionally of one link and/or family. */
  async list(filter: NeighbourFilter = {}): Promise<Neighbour[]> {
    const op = 'neighbour.list';
    const index = filter.link === undefined ? undefined : await this.r.index(op, filter.link);
    const family = filter.family === 4 ? AF_INET : filter.family === 6 ? AF_INET6 : AF_UNSPEC;
    const msgs = await this.r.dump(op, RTM_GETNEIGH, encodeNeighbourDump(family));
    return msgs
      .map((m) => decodeNeighbour(m.payload))
      .filter((n) => (n.family === AF_INET || n.family === AF_INET6) && (index === undefined || n.index === index));
  }

  private async change(op: string, type: number, flags: number, link: LinkRef, ip: string, mac: string | undefined): Promise<void> {
    const subject = `${ip}${mac ? ` lladdr ${mac}` : ''} dev ${String(link)}`;
    const parsed = this.r.parse(op, subject, () => ({ address: parseIp(ip), ...(mac !== undefined ? { mac: parseMac(mac) } : {}) }));
    const index = await this.r.index(op, link);
    await this.r.call(op, subject, type, flags, encodeNeighbourRequest({ index, state: NUD_PERMANENT, ...parsed }));
  }
}
