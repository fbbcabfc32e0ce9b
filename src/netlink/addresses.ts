/** Address operations of a Netlink handle. */
import { decodeAddress, encodeAddressDump, encodeAddressRequest, type Address } from './codec/address.js';
import { AF_INET, AF_INET6, AF_UNSPEC, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR } from './codec/constants.js';
import { parsePrefix } from './codec/ip.js';
import type { LinkRef, Requester } from './requester.js';

export type { Address };

export interface AddressOptions {
  /** IPv6: no duplicate address detection (IFA_F_NODAD): the address is usable immediately. */
  noDad?: boolean;
  /** Do not install the subnet route for the prefix (IFA_F_NOPREFIXROUTE). */
  noPrefixRoute?: boolean;
}

export interface AddressFilter {
  link?: LinkRef;
  family?: 4 | 6;
}

export class AddressOps {
  constructor(private readonly r: Requester) {}

  /** Adds 'addr/len' to a link; EEXIST if it is already there. */
  add(link: LinkRef, cidr: string, options: AddressOptions = {}): Promise<void> {
    return this.change('address.add', RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, link, cidr, options);
  }

  /** Adds the address or updates its flags if present. */
  replace(link: LinkRef, cidr: string, options: AddressOptions = {}): Promise<void> {
    return this.change('address.replace', RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, link, cidr, options);
  }

  /** Removes 'addr/len' from a link; EADDRNOTAVAIL if it is not there. */
  delete(link: LinkRef, cidr: string): Promise<void> {
    return this.change('address.delete', RTM_DELADDR, 0, link, cidr, {});
  }

  /** Addresses of the namespace, optionally of one link and/or one family. */
  async list(filter: AddressFilter = {}): Promise<Address[]> {
    const op = 'address.list';
    const index = filter.link === undefined ? undefined : await this.r.index(op, filter.link);
    const family = filter.family === 4 ? AF_INET : filter.family === 6 ? AF_INET6 : AF_UNSPEC;
    const msgs = await this.r.dump(op, RTM_GETADDR, encodeAddressDump(family));
    return msgs.map((m) => decodeAddress(m.payload)).filter((a) => index === undefined || a.index === index);
  }

  private async change(op: string, type: number, flags: number, link: LinkRef, cidr: string, options: AddressOptions): Promise<void> {
    const subject = `${cidr} dev ${String(link)}`;
    const prefix = this.r.parse(op, subject, () => parsePrefix(cidr));
    const index = await this.r.index(op, link);
    const payload = encodeAddressRequest({ index, prefix, ...options });
    await this.r.call(op, subject, type, flags, payload);
  }
}
