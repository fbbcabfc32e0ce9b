/**
 * etcd v3 store, through the `etcd3` client (its connection pool, TLS and raw KV/Watch RPCs; the
 * store speaks the RPCs itself, not the client's builders, to see revisions and compaction).
 *
 * Layout under the prefix: `kv/<key>` holds the controller's keys (JSON values), `meta/id` a
 * random id written once, `meta/rev` is rewritten by every commit: its mod_revision is the
 * revision of the controller's last commit, and every commit Txn compares it, so a commit that
 * raced another writer on the same prefix (or a retried Txn) fails instead of applying twice.
 *
 * Revisions are etcd's own (global to the cluster: writes under other prefixes leave gaps).
 * Atomicity: one Txn per group of ops. A group commit packs whole mutations into Txns of at most
 * `maxTxnOps` ops (etcd's --max-txn-ops) and no repeated key; the Txns run one after another, so
 * each mutation is atomic and gets the revision of its Txn, and mutations sharing a Txn share a
 * revision. Only a single mutation larger than one Txn (deleting a network with more than
 * ~126 blocks and exceptions) is split; its ops are ordered children first, so any committed
 * prefix of them is a consistent state. A failed Txn fails the whole batch; the controller then
 * reloads from etcd, which holds what did commit.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Etcd3, type ICompare, type IRequestOp, type IWatchResponse, type Lease, type Watcher } from 'etcd3';
import { Backoff } from '../../common/backoff.js';
import type { CommitResult, FollowedChange, FollowHandlers, KeyValue, Leadership, Mailbox, Store, StoreChange, StoreOp } from './types.js';
import { NotLeaderError, StoreError } from './types.js';

export interface EtcdStoreOptions {
  /** Client URLs, e.g. ['https://10.0.0.1:2379']. */
  endpoints: string[];
  /** Key prefix; ends with '/' so that a shared etcd keeps Loom apart (e.g. '/loom/'). */
  prefix: string;
  /** PEM files: CA to verify etcd, and a client certificate and key for mutual TLS. */
  tls?: { ca: string; cert?: string; key?: string };
  /** etcd's --max-txn-ops (128 by default). */
  maxTxnOps?: number;
  /** Deadline of one RPC. */
  timeoutMs?: number;
  /** Keys per Range page while loading. */
  pageSize?: number;
  /**
   * Leader election among controllers sharing the prefix: the store commits only while it holds
   * `<prefix>leader` under its lease, and every commit Txn compares that key's create_revision,
   * so a deposed leader's commit fails even while it still believes it leads.
   */
  election?: { address: string; ttlSeconds: number };
}

/** The first key after every key starting with `prefix` (etcd's range_end for a prefix). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

const COMPACTED = /required revision has been compacted/;

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private readonly dataPrefix: Buffer;
  private readonly revKey: Buffer;
  private readonly idKey: Buffer;
  private readonly maxTxnOps: number;
  private readonly timeoutMs: number;
  private readonly pageSize: number;
  private readonly leaderKey: Buffer;
  private rev = 0;
  private compacted = 0;
  private storeId = '';
  /** create_revision of our leader key while we lead (the fencing token), else 0. */
  private term = 0;
  /** The last commit's revision (meta/rev's mod_revision) read atomically with winning the term. */
  private termBase = 0;
  private leaderAddress = '';
  private lease: Lease | null = null;
  private closed = false;
  /** Controllers' messages (trace requests for an agent streaming elsewhere); only with election. */
  readonly mailbox: Mailbox | undefined;

  private constructor(private readonly opts: EtcdStoreOptions) {
    if (!opts.prefix.endsWith('/')) throw new StoreError(`etcd prefix ${JSON.stringify(opts.prefix)} must end with '/'`);
    let credentials: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } | undefined;
    if (opts.tls) {
      const read = (what: string, file: string): Buffer => {
        try {
          return readFileSync(file);
        } catch (err) {
          throw new StoreError(`cannot read the etcd ${what} ${file}: ${(err as Error).message}`);
        }
      };
      credentials = {
        rootCertificate: read('CA', opts.tls.ca),
        certChain: opts.tls.cert ? read('client certificate', opts.tls.cert) : undefined,
        privateKey: opts.tls.key ? read('client key', opts.tls.key) : undefined,
      };
    }
    this.client = new Etcd3({ hosts: opts.endpoints, credentials, dialTimeout: opts.timeoutMs ?? 5000 });
    this.dataPrefix = Buffer.from(`${opts.prefix}kv/`);
    this.revKey = Buffer.from(`${opts.prefix}meta/rev`);
    this.idKey = Buffer.from(`${opts.prefix}meta/id`);
    this.leaderKey = Buffer.from(`${opts.prefix}leader`);
    this.maxTxnOps = opts.maxTxnOps ?? 128;
    if (this.maxTxnOps < 2) throw new StoreError('maxTxnOps must be at least 2');
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.pageSize = opts.pageSize ?? 1000;
    this.mailbox = opts.election ? this.openMailbox() : undefined;
  }

  /** Connects, creates the id on first use, learns the revision and how far etcd compacted. */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const s = new EtcdStore(opts);
    try {
      await s.init();
      if (opts.election) await s.campaignOnce();
    } catch (err) {
      await s.close();
      throw err instanceof StoreError ? err : new StoreError(`cannot open etcd store ${opts.endpoints.join(',')} prefix ${opts.prefix}: ${(err as Error).message}`);
    }
    return s;
  }

  private deadline(): { deadline: Date } {
    return { deadline: new Date(Date.now() + this.timeoutMs) };
  }

  private async init(): Promise<void> {
    // First use of the prefix: id and revision marker, once (the compare makes a race harmless).
    const res = await this.client.kv.txn(
      {
        compare: [{ key: this.idKey, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [
          { request_put: { key: this.idKey, value: Buffer.from(randomUUID()) } },
          { request_put: { key: this.revKey, value: Buffer.from('0') } },
        ],
        failure: [{ request_range: { key: this.idKey } }, { request_range: { key: this.revKey } }],
      },
      this.deadline(),
    );
    const cluster = BigInt(res.header.cluster_id).toString(16);
    if (res.succeeded) {
      this.rev = Number(res.header.revision);
      this.storeId = '';
      const id = await this.client.kv.range({ key: this.idKey }, this.deadline());
      this.storeId = `etcd-${cluster}-${id.kvs[0].value.toString()}`;
    } else {
      const [idRes, revRes] = res.responses;
      const idKv = idRes.response_range.kvs[0];
      const revKv = revRes.response_range.kvs[0];
      if (!revKv) throw new StoreError(`etcd prefix ${this.opts.prefix} has an id but no revision marker ${this.revKey.toString()}`);
      this.storeId = `etcd-${cluster}-${idKv.value.toString()}`;
      this.rev = Number(revKv.mod_revision);
    }
  }

  id(): string {
    return this.storeId;
  }

  leadership(): Leadership | null {
    if (!this.opts.election) return null;
    if (this.term === 0) return { term: 0, leader: this.leaderAddress };
    return { term: this.term, leader: this.opts.election.address, base: this.termBase };
  }

  /**
   * One round of the election: take the leader key under a fresh lease if nobody holds it, else
   * learn who does and campaign again when that key goes away (its lease expired or was revoked).
   */
  private async campaignOnce(): Promise<void> {
    const election = this.opts.election!;
    if (!this.lease) {
      const lease = this.client.lease(election.ttlSeconds);
      this.lease = lease;
      lease.on('lost', () => {
        // Keepalives failed past the TTL: the key is gone or going; stop writing now.
        this.term = 0;
        this.lease = null;
        this.retryCampaign();
      });
    }
    const id = await this.lease.grant();
    const res = await this.client.kv.txn(
      {
        compare: [{ key: this.leaderKey, target: 'Create', result: 'Equal', create_revision: 0 }],
        // Read with the win, in the same Txn: the last commit before this term. A deposed leader's
        // commits are fenced on its own key, gone before ours was created, so none comes after it.
        success: [{ request_put: { key: this.leaderKey, value: Buffer.from(election.address), lease: id } }, { request_range: { key: this.revKey } }],
        failure: [{ request_range: { key: this.leaderKey } }],
      },
      this.deadline(),
    );
    if (res.succeeded) {
      const marker = res.responses[1]?.response_range.kvs[0];
      this.termBase = marker ? Number(marker.mod_revision) : 0;
      this.term = Number(res.header.revision);
      this.leaderAddress = election.address;
      return;
    }
    const holder = res.responses[0].response_range.kvs[0];
    this.leaderAddress = holder ? holder.value.toString() : '';
    const watcher = await this.client.watch().key(this.leaderKey.toString()).startRevision(String(Number(res.header.revision) + 1)).create();
    const again = (): void => {
      void watcher.cancel();
      this.retryCampaign();
    };
    watcher.once('delete', again);
    watcher.once('error', again);
  }

  /** After a failed round (etcd unreachable, a watch error): soon, as the leader may be gone. */
  private readonly campaignBackoff = new Backoff({ minMs: 50, maxMs: 1000 });

  private retryCampaign(): void {
    if (this.closed) return;
    this.campaignOnce().then(
      () => this.campaignBackoff.reset(),
      () => setTimeout(() => this.retryCampaign(), this.campaignBackoff.next()).unref(),
    );
  }

  revision(): number {
    return this.rev;
  }

  compactedRevision(): number {
    return this.compacted;
  }

  /** Pages through the prefix at one pinned revision, and takes the revision of that moment. */
  async loadAll(): Promise<KeyValue[]> {
    for (;;) {
      try {
        return await this.loadAt();
      } catch (err) {
        // etcd compacted the pinned revision between two pages: start over at a newer one.
        if (!COMPACTED.test((err as Error).message)) throw new StoreError(`loading from etcd failed: ${(err as Error).message}`);
      }
    }
  }

  private async loadAt(): Promise<KeyValue[]> {
    const end = prefixEnd(this.dataPrefix);
    const marker = await this.client.kv.range({ key: this.revKey }, this.deadline());
    const pinned = marker.header.revision;
    const out: KeyValue[] = [];
    let from = this.dataPrefix;
    for (;;) {
      const page = await this.client.kv.range({ key: from, range_end: end, revision: pinned, limit: this.pageSize }, this.deadline());
      for (const kv of page.kvs) {
        out.push({
          key: kv.key.subarray(this.dataPrefix.length).toString(),
          value: JSON.parse(kv.value.toString()) as unknown,
          createRevision: Number(kv.create_revision),
          modRevision: Number(kv.mod_revision),
        });
      }
      if (!page.more || page.kvs.length === 0) break;
      from = Buffer.concat([page.kvs[page.kvs.length - 1].key, Buffer.from([0])]);
    }
    this.rev = marker.kvs[0] ? Number(marker.kvs[0].mod_revision) : this.rev;
    return out;
  }

  async commit(ops: StoreOp[]): Promise<CommitResult> {
    if (ops.length === 0) return { revision: this.rev };
    const [revision] = await this.commitBatch([ops]);
    return { revision };
  }

  /**
   * Packs the mutations into Txns (see the module comment) and runs them in order. Resolves
   * with each non-empty element's revision (non-decreasing; equal for elements sharing a Txn).
   */
  async commitBatch(batch: StoreOp[][]): Promise<number[]> {
    const nonEmpty = batch.filter((ops) => ops.length > 0);
    const room = this.maxTxnOps - 1; // one op is the revision marker
    const txns: { ops: StoreOp[]; elements: number }[] = [];
    let cur: { ops: StoreOp[]; elements: number; keys: Set<string> } | null = null;
    const owner: number[] = []; // element -> index of the Txn that commits its last op
    for (const raw of nonEmpty) {
      // Within one element the last op on a key wins (etcd refuses a key twice in one Txn).
      const last = new Map<string, StoreOp>();
      for (const op of raw) {
        last.delete(op.key);
        last.set(op.key, op);
      }
      const ops = [...last.values()];
      const fits = cur !== null && cur.ops.length + ops.length <= room && ops.every((o) => !cur!.keys.has(o.key));
      if (!fits) {
        cur = { ops: [], elements: 0, keys: new Set() };
        txns.push(cur);
      }
      for (let i = 0; i < ops.length; i += room) {
        if (cur!.ops.length + Math.min(room, ops.length - i) > room) {
          cur = { ops: [], elements: 0, keys: new Set() };
          txns.push(cur);
        }
        for (const op of ops.slice(i, i + room)) {
          cur!.ops.push(op);
          cur!.keys.add(op.key);
        }
      }
      cur!.elements++;
      owner.push(txns.length - 1);
    }
    const revs: number[] = [];
    for (const t of txns) revs.push(await this.commitTxn(t.ops));
    return owner.map((i) => revs[i]);
  }

  private async commitTxn(ops: StoreOp[]): Promise<number> {
    const expected = this.rev;
    const requests: IRequestOp[] = ops.map((op) => {
      const key = Buffer.concat([this.dataPrefix, Buffer.from(op.key)]);
      return op.type === 'put' ? { request_put: { key, value: Buffer.from(JSON.stringify(op.value)) } } : { request_delete_range: { key } };
    });
    requests.push({ request_put: { key: this.revKey, value: Buffer.from(String(expected)) } });
    const fence: ICompare[] = [{ key: this.revKey, target: 'Mod', result: 'Equal', mod_revision: expected }];
    if (this.opts.election) {
      if (this.term === 0) throw new NotLeaderError(this.leaderAddress);
      fence.push({ key: this.leaderKey, target: 'Create', result: 'Equal', create_revision: this.term });
    }
    let res;
    try {
      res = await this.client.kv.txn({ compare: fence, success: requests, failure: [{ request_range: { key: this.leaderKey } }] }, this.deadline());
    } catch (err) {
      throw new StoreError(`etcd commit after revision ${expected} failed: ${(err as Error).message}`);
    }
    if (!res.succeeded) {
      const holder = res.responses[0]?.response_range.kvs[0];
      if (this.opts.election && Number(holder?.create_revision ?? 0) !== this.term) {
        // Deposed: another controller (or nobody) holds the leader key now.
        this.term = 0;
        this.leaderAddress = holder ? holder.value.toString() : '';
        throw new NotLeaderError(this.leaderAddress);
      }
      throw new StoreError(`etcd commit refused: ${this.revKey.toString()} moved past revision ${expected} (another writer on prefix ${this.opts.prefix}?)`);
    }
    this.rev = Number(res.header.revision);
    return this.rev;
  }

  /**
   * Changes after `after` from etcd's history, through a watch from `after + 1` that runs until
   * the revision marker's event at the last known commit; null when etcd compacted past `after`.
   */
  async changesSince(after: number): Promise<StoreChange[] | null> {
    const target = this.rev;
    if (after >= target) return [];
    if (after < this.compacted) return null;
    const stream = await this.client.watchClient.watch();
    const out: StoreChange[] = [];
    try {
      return await new Promise<StoreChange[] | null>((resolve, reject) => {
        const timer = setTimeout(() => reject(new StoreError(`etcd watch from revision ${after + 1} did not reach ${target} in ${this.timeoutMs} ms`)), this.timeoutMs);
        const done = (v: StoreChange[] | null | Error): void => {
          clearTimeout(timer);
          if (v instanceof Error) reject(v);
          else resolve(v);
        };
        stream.on('error', (err: Error) => done(new StoreError(`etcd watch failed: ${err.message}`)));
        stream.on('data', (res: IWatchResponse) => {
          if (Number(res.compact_revision) > 0) {
            this.compacted = Math.max(this.compacted, Number(res.compact_revision) - 1);
            done(null);
            return;
          }
          if (res.canceled) return done(new StoreError(`etcd canceled the watch: ${res.cancel_reason || 'no reason given'}`));
          let reached = false;
          for (const ev of res.events) {
            const rev = Number(ev.kv.mod_revision);
            if (ev.kv.key.equals(this.revKey)) {
              if (rev >= target) reached = true;
              continue;
            }
            if (rev > target || !ev.kv.key.subarray(0, this.dataPrefix.length).equals(this.dataPrefix)) continue;
            out.push({ revision: rev, key: ev.kv.key.subarray(this.dataPrefix.length).toString(), deleted: ev.type === 'Delete' });
          }
          if (reached) done(out.sort((a, b) => a.revision - b.revision || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
        });
        const prefix = Buffer.from(this.opts.prefix);
        stream.write({ create_request: { key: prefix, range_end: prefixEnd(prefix), start_revision: after + 1 } });
      });
    } finally {
      stream.end();
      stream.on('error', () => {});
    }
  }

  /**
   * A watch on the data keys from `after + 1` that lives until stopped: reopened (through the
   * client's other endpoints) with backoff when etcd or the connection fails, from the last
   * revision taken. Events of one revision arrive in one watch response (no fragmenting asked).
   */
  follow(after: number, h: FollowHandlers): () => void {
    let last = after;
    let stopped = false;
    let stream: Awaited<ReturnType<typeof this.client.watchClient.watch>> | null = null;
    let timer: NodeJS.Timeout | undefined;
    const backoff = new Backoff({ minMs: 100, maxMs: 1000 });
    const end = prefixEnd(this.dataPrefix);
    const reopen = (): void => {
      stream?.end();
      stream = null;
      if (stopped || this.closed) return;
      clearTimeout(timer);
      timer = setTimeout(open, backoff.next());
      timer.unref();
    };
    const open = (): void => {
      if (stopped || this.closed) return;
      this.client.watchClient.watch().then((s) => {
        if (stopped || this.closed) {
          s.end();
          return;
        }
        stream = s;
        const lost = (): void => {
          if (stream === s) reopen();
        };
        s.on('error', lost);
        s.on('end', lost);
        s.on('data', (res: IWatchResponse) => {
          if (stream !== s) return; // an abandoned stream's late answer
          if (Number(res.compact_revision) > 0) {
            this.compacted = Math.max(this.compacted, Number(res.compact_revision) - 1);
            stopped = true;
            s.end();
            h.onLost();
            return;
          }
          if (res.canceled) return lost();
          backoff.reset();
          const byRev = new Map<number, FollowedChange[]>();
          for (const ev of res.events) {
            const rev = Number(ev.kv.mod_revision);
            if (rev <= last) continue;
            const change = {
              key: ev.kv.key.subarray(this.dataPrefix.length).toString(),
              value: ev.type === 'Delete' ? null : (JSON.parse(ev.kv.value.toString()) as unknown),
              createRevision: Number(ev.kv.create_revision),
            };
            const list = byRev.get(rev);
            if (list) list.push(change);
            else byRev.set(rev, [change]);
          }
          for (const [rev, changes] of [...byRev].sort((a, b) => a[0] - b[0])) {
            if (!h.onRevision(rev, changes)) continue;
            last = rev;
            this.rev = Math.max(this.rev, rev);
          }
        });
        s.write({ create_request: { key: this.dataPrefix, range_end: end, start_revision: last + 1 } });
      }, reopen);
    };
    open();
    return () => {
      stopped = true;
      clearTimeout(timer);
      stream?.end();
    };
  }

  /**
   * Compacts etcd's history (the whole cluster's: etcd only compacts globally). etcd keeps the
   * events AT its compaction revision, so after Compact(r) the changes after r - 1 are kept.
   */
  async compact(upTo: number): Promise<void> {
    const target = Math.min(upTo, this.rev);
    if (target - 1 <= this.compacted) return;
    try {
      await this.client.kv.compact({ revision: target }, this.deadline());
    } catch (err) {
      if (!COMPACTED.test((err as Error).message)) throw new StoreError(`etcd compaction to ${target} failed: ${(err as Error).message}`);
    }
    this.compacted = target - 1;
  }

  /** Builds {@link mailbox}. */
  private openMailbox(): Mailbox {
    const key = (box: string, id: string): string => `${this.opts.prefix}mail/${box}/${id}`;
    return {
      post: async (box, id, value) => {
        const data = JSON.stringify(value);
        // On our lease: a controller that dies leaves no mail behind.
        await (this.lease ? this.lease.put(key(box, id)) : this.client.put(key(box, id))).value(data).exec();
      },
      remove: async (box, id) => {
        await this.client.delete().key(key(box, id)).exec();
      },
      subscribe: (box, fn) => {
        const prefix = `${this.opts.prefix}mail/${box}/`;
        let stopped = false;
        let watcher: Watcher | undefined;
        void this.client
          .watch()
          .prefix(prefix)
          .create()
          .then(
            (w) => {
              watcher = w;
              if (stopped) return void w.cancel();
              w.on('put', (kv) => {
                let value: unknown;
                try {
                  value = JSON.parse(kv.value.toString());
                } catch {
                  return; // not ours to read
                }
                fn(kv.key.toString().slice(prefix.length), value);
              });
            },
            () => undefined,
          );
        return () => {
          stopped = true;
          void watcher?.cancel();
        };
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    // Resign at once rather than make the others wait out the lease.
    if (this.lease) await this.lease.revoke().catch(() => {});
    this.term = 0;
    this.client.close();
  }
}
