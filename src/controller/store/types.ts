/**
 * The controller's durable store: a revisioned key-value space shaped like etcd's (sqlite.ts,
 * etcd.ts). Every commit applies its operations atomically at ONE new revision (etcd: a Txn
 * bumps the revision once; our `modRevision` is etcd's mod_revision, `createRevision` its
 * create_revision). Revisions increase but need not be consecutive: the store, not the caller,
 * assigns them (etcd's are global to a cluster other clients write to). Values are JSON.
 */

/** A live key. */
export interface KeyValue {
  key: string;
  value: unknown;
  createRevision: number;
  modRevision: number;
}

export type StoreOp = { type: 'put'; key: string; value: unknown } | { type: 'delete'; key: string };

/** One key changed at one revision (etcd: a watch event). */
export interface StoreChange {
  revision: number;
  key: string;
  deleted: boolean;
}

/** Result of a commit: the revision every op got. */
export interface CommitResult {
  revision: number;
}

export interface Store {
  /** Random identity fixed when the store was created (etcd: the cluster id). */
  id(): string;
  /** Current revision: that of the last commit, 0 for an empty store. */
  revision(): number;
  /** All live keys with their metadata (at startup: the controller keeps state in memory). */
  loadAll(): Promise<KeyValue[]>;
  /**
   * Applies `ops` atomically at a new revision (> revision()) and makes them durable before
   * resolving. Callers serialize commits (the controller runs one batch at a time).
   */
  commit(ops: StoreOp[]): Promise<CommitResult>;
  /**
   * Group commit: each non-empty element is applied atomically, in order, and resolves to the
   * revision it got: increasing, or equal for elements the store committed together (etcd packs
   * several into one Txn). Afterwards revision() is the last of them. SQLite: one transaction,
   * consecutive revisions, all or nothing. etcd: consecutive Txns; a failure may leave a prefix
   * of the batch committed (the caller reloads).
   */
  commitBatch(batch: StoreOp[][]): Promise<number[]>;
  /**
   * Changes with revision > `after`, oldest first; null when the log was compacted past `after`
   * (the caller must then fall back to a full read).
   */
  changesSince(after: number): Promise<StoreChange[] | null>;
  /** Drops change-log entries with revision <= `upTo` (etcd: Compact). */
  compact(upTo: number): Promise<void>;
  /** Revision up to which the log was compacted (changes after it are all kept). */
  compactedRevision(): number;
  /**
   * Leader election (etcd with several controllers): term > 0 while this store may commit (the
   * fencing token), else 0 with the leader's address ('' if none is known); null without election.
   */
  leadership?(): Leadership | null;
  /**
   * Follows other writers' commits from `after` on (etcd's watch: controllers that do not lead
   * keep their memory hot). `onRevision` gets each revision's changes in order and answers whether
   * the caller took them (only then does revision() advance to it, so a commit fenced on a
   * revision the caller's memory lacks fails); `onLost` when the history was compacted past what
   * was followed (reload, then follow again). Returns a function that stops following.
   */
  follow?(after: number, handlers: FollowHandlers): () => void;
  /** Messages between controllers sharing the store (etcd with election); absent with one controller. */
  mailbox?: Mailbox;
  close(): Promise<void>;
}

/**
 * Best-effort messages between the controllers of one store, outside its state: a post is seen by
 * every subscriber of its box (from their subscription on) until it is removed or its poster's
 * session ends (etcd: keys under `<prefix>mail/<box>/`, on the poster's lease).
 */
export interface Mailbox {
  post(box: string, id: string, value: unknown): Promise<void>;
  remove(box: string, id: string): Promise<void>;
  /** Calls `fn` for each post made to `box` after subscribing; returns the unsubscribe. */
  subscribe(box: string, fn: (id: string, value: unknown) => void): () => void;
}

/** A key another writer changed (value null: deleted). */
export interface FollowedChange {
  key: string;
  value: unknown;
  createRevision: number;
}

export interface FollowHandlers {
  onRevision(revision: number, changes: FollowedChange[]): boolean;
  onLost(): void;
}

export interface Leadership {
  term: number;
  leader: string;
  /**
   * While leading: the revision of the store's last commit when this term began (read atomically
   * with winning it). Memory at that revision is current: no other writer can commit after it.
   */
  base?: number;
}

/** Raised when a store cannot be opened or written; the message says which file and why. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
}

/** A commit on a controller that does not lead (or no longer does). */
export class NotLeaderError extends StoreError {
  constructor(readonly leader: string) {
    super(leader ? `this controller is not the leader; send writes to ${leader}` : 'this controller is not the leader and no leader is elected yet; retry');
  }
}
