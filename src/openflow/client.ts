/**
 * High-level OpenFlow 1.3 client for Open vSwitch: add/modify/delete flows (by cookie and mask),
 * atomic bundles of flow changes, flow read-back through flow stats, group_mod, packet_out and
 * port descriptions. Built on OpenFlowConnection (transport) and the pure codecs.
 */
import { OpenFlowConnection, type ConnectionOptions } from './connection.js';
import { OpenFlowError, type OfErrorInfo } from './errors.js';
import { encodeMatch, decodeMatch } from './match.js';
import { decodeInstructions } from './instructions.js';
import { FlowModEncoder } from './flowenc.js';
import { encodeActions } from './actions.js';
import { formatFlow } from './printer.js';
import {
  ByteWriter, OFPBF_ATOMIC, OFPBF_ORDERED, OFPTT_ALL, decodeFlowStatsBody, decodePortDescBody, encodeBundleCtrl,
  encodeFlowStatsRequest, encodeMeterMod, encodePacketOut, encodePortDescRequest, writeBundleAddFlowMod, writeFlowMod, writeGroupMod,
  type BundleCtrl, type FlowMod, type MeterMod, type FlowModCommand, type GroupModCommand, type GroupType, type PacketIn, type PortDesc,
} from './messages.js';
import type { Action, FlowDescription, Instruction, Match } from './types.js';

/**
 * A flow, or for modify/delete a selection of flows: a FlowMod (same fields and defaults) whose
 * table is `table` and whose match and instructions are still structured.
 */
export type FlowSpec = Omit<FlowMod, 'command' | 'tableId' | 'bufferId' | 'match' | 'instructions'> & {
  /** Table (default 0; for delete, all tables). */
  table?: number;
  match?: Match;
  instructions?: Instruction[];
};

/** One change of a flow table: a flow_mod command with its flow (or selection). */
export interface FlowChange extends FlowSpec {
  command: FlowModCommand;
}

/** A flow as read back from the switch (flow stats). */
export type DumpedFlow = FlowDescription & {
  table: number;
  priority: number;
  cookie: bigint;
  durationSec: number;
  durationNsec: number;
  packetCount: bigint;
  byteCount: bigint;
};

export interface FlowFilter {
  /** Default: all tables. */
  table?: number;
  cookie?: bigint;
  cookieMask?: bigint;
  /** Non-strict: flows at least as specific as this match. */
  match?: Match;
  outPort?: number;
  outGroup?: number;
}

export interface GroupSpec {
  command: GroupModCommand;
  type: GroupType;
  groupId: number;
  buckets: Array<{ weight?: number; watchPort?: number; watchGroup?: number; actions: Action[] }>;
}

/** Which change failed and why. */
export interface ChangeFailure {
  index: number;
  change: FlowChange;
  /** The switch's error; absent when the change could not even be encoded. */
  error?: OfErrorInfo;
  reason: string;
}

/** Some changes of a non-atomic batch failed (the others were applied). */
export class FlowModError extends Error {
  readonly failures: ChangeFailure[];
  constructor(failures: ChangeFailure[], total: number) {
    const first = failures[0];
    super(`${failures.length} of ${total} flow changes failed; first: change #${first.index} (${describeChange(first.change)}): ${first.reason}`);
    this.name = 'FlowModError';
    this.failures = failures;
  }
}

/** An atomic bundle was rejected: nothing of it was applied. */
export class BundleError extends Error {
  /** Index (in the list handed to applyBundle) of the change that failed; -1 if none in particular. */
  readonly index: number;
  readonly change: FlowChange | undefined;
  readonly error: OfErrorInfo | undefined;
  readonly reason: string;
  constructor(failure: { index: number; change?: FlowChange; error?: OfErrorInfo; reason: string }) {
    super(failure.index >= 0 && failure.change
      ? `bundle rejected, nothing applied: change #${failure.index} (${describeChange(failure.change)}) failed: ${failure.reason}`
      : `bundle rejected, nothing applied: ${failure.reason}`);
    this.name = 'BundleError';
    this.index = failure.index;
    this.change = failure.change;
    this.error = failure.error;
    this.reason = failure.reason;
  }
}

/** A change in ovs-ofctl syntax, for error messages: `add table=3, priority=5 actions=goto_table:2`. */
export function describeChange(c: FlowChange): string {
  try {
    const text = formatFlow({ ...c, match: c.match ?? [], instructions: c.instructions ?? [] });
    // A delete carries no instructions: leave out the printer's "actions=drop".
    const isDelete = c.command === 'delete' || c.command === 'delete_strict';
    return `${c.command} ${isDelete ? text.replace(/,? ?actions=drop$/, '') : text}`.trim();
  } catch {
    return `${c.command} (unprintable flow)`;
  }
}

function errorReason(e: OfErrorInfo): string {
  return new OpenFlowError(e).message.replace(/^OpenFlow error /, '');
}

// Changes encoded per socket write while streaming a batch.
const STREAM_CHUNK = 1024;

// Large batches take the switch a while; scale the wait with their size.
function batchTimeout(base: number, n: number): number {
  return base + n;
}

export interface ClientOptions extends ConnectionOptions {
  /** Default wait for replies (ms); large batches get 1 ms per message more. Default 30 000. */
  timeoutMs?: number;
}

export class OpenFlowClient {
  readonly connection: OpenFlowConnection;
  private readonly timeoutMs: number;
  private bundleId = 0;
  private readonly encoder = new FlowModEncoder();

  private constructor(conn: OpenFlowConnection, timeoutMs: number) {
    this.connection = conn;
    this.timeoutMs = timeoutMs;
  }

  /** Connects to `unix:<path>` (e.g. `<rundir>/<bridge>.mgmt`) or `tcp:<host>:<port>`. */
  static async connect(target: string, opts: ClientOptions = {}): Promise<OpenFlowClient> {
    const conn = await OpenFlowConnection.connect(target, { requestTimeoutMs: opts.timeoutMs ?? 30_000, ...opts });
    return new OpenFlowClient(conn, opts.timeoutMs ?? 30_000);
  }

  /** Applies changes in order, not atomically; throws FlowModError naming the failed ones. */
  async apply(changes: FlowChange[]): Promise<void> {
    if (changes.length === 0) return;
    await this.ready();
    const conn = this.connection;
    const first = conn.reserveXids(changes.length);
    const watch = conn.watchErrors(first, changes.length);
    try {
      const bad = await this.stream(changes, (w, i, fm) => writeFlowMod(w, (first + i) >>> 0, fm));
      await conn.barrier(batchTimeout(this.timeoutMs, changes.length));
      const failures: ChangeFailure[] = watch.errors.map((e) => {
        const index = (e.xid - first) >>> 0;
        return { index, change: changes[index], error: e, reason: errorReason(e) };
      });
      failures.push(...bad);
      if (failures.length > 0) throw new FlowModError(failures.sort((x, y) => x.index - y.index), changes.length);
    } finally {
      watch.stop();
    }
  }

  /**
   * Encodes changes in chunks and writes each chunk as soon as it is ready, so the switch works on
   * one chunk while the next is encoded. Returns the changes that could not be encoded (skipped,
   * or with `stopOnBad` the first one, ending the stream); ends early when `stop()` says so.
   */
  private async stream(
    changes: FlowChange[],
    write: (w: ByteWriter, index: number, fm: FlowMod) => void,
    opts: { stopOnBad?: boolean; stop?: () => boolean } = {},
  ): Promise<ChangeFailure[]> {
    const bad: ChangeFailure[] = [];
    for (let start = 0; start < changes.length; start += STREAM_CHUNK) {
      const end = Math.min(start + STREAM_CHUNK, changes.length);
      const w = new ByteWriter((end - start) * 192);
      for (let i = start; i < end; i++) {
        let fm: FlowMod;
        try {
          fm = this.encoder.toFlowMod(changes[i]);
        } catch (err) {
          bad.push({ index: i, change: changes[i], reason: (err as Error).message });
          if (opts.stopOnBad) {
            if (w.pos > 0) this.connection.send(w.view());
            return bad;
          }
          continue;
        }
        write(w, i, fm);
      }
      if (w.pos > 0) this.connection.send(w.view());
      if (end < changes.length) {
        // Let the socket drain and replies (errors) come in before encoding more.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (opts.stop?.()) break;
      }
    }
    return bad;
  }

  /** Adds flows (not atomically; see applyBundle). */
  addFlows(flows: FlowSpec[]): Promise<void> {
    return this.apply(flows.map((f) => ({ ...f, command: 'add' })));
  }

  /** Modifies the instructions of matching flows (strict: same match and priority). */
  modifyFlows(flows: FlowSpec[], opts: { strict?: boolean } = {}): Promise<void> {
    return this.apply(flows.map((f) => ({ ...f, command: opts.strict ? 'modify_strict' : 'modify' })));
  }

  /** Deletes flows selected by table, cookie/mask, match, out port/group (strict: exact match and priority). */
  deleteFlows(filter: FlowFilter & { priority?: number; strict?: boolean } = {}): Promise<void> {
    const { strict, ...rest } = filter;
    return this.apply([{ ...rest, command: strict ? 'delete_strict' : 'delete' }]);
  }

  /**
   * Applies all changes or none (ONF bundle, flags atomic + ordered). On failure throws BundleError
   * with the index of the change that failed and the switch's reason; nothing is installed.
   * `commitAfter`: the bundle is opened and filled at once but committed only once it resolves;
   * if it rejects, the bundle is discarded and its error thrown (the caller overlaps sending the
   * flows with work they depend on).
   */
  async applyBundle(changes: FlowChange[], options: { commitAfter?: Promise<unknown> } = {}): Promise<void> {
    options.commitAfter?.catch(() => undefined); // awaited after the adds; not unhandled meanwhile
    await this.ready();
    const conn = this.connection;
    const flags = OFPBF_ATOMIC | OFPBF_ORDERED;
    const bundleId = (this.bundleId = (this.bundleId + 1) >>> 0);
    const timeout = batchTimeout(this.timeoutMs, changes.length);
    const first = conn.reserveXids(changes.length);
    const discard = (): Promise<void> =>
      this.bundleCtrl({ bundleId, type: 'discard_request', flags }, this.timeoutMs).catch(() => undefined);
    // Errors for the adds (OVS checks each as it arrives) and, at commit, for the failing change.
    const watch = conn.watchErrors(first, changes.length);
    const failure = (bad?: ChangeFailure): BundleError => {
      const fromSwitch = watch.errors.map((e): ChangeFailure => {
        const index = (e.xid - first) >>> 0;
        return { index, change: changes[index], error: e, reason: errorReason(e) };
      });
      const all = bad ? [...fromSwitch, bad] : fromSwitch;
      return new BundleError(all.reduce((x, y) => (y.index < x.index ? y : x)));
    };
    try {
      const opened = this.bundleCtrl({ bundleId, type: 'open_request', flags }, timeout).then(() => undefined, (e: unknown) => e);
      const [bad] = await this.stream(changes, (w, i, fm) => writeBundleAddFlowMod(w, (first + i) >>> 0, bundleId, flags, fm),
        { stopOnBad: true, stop: () => watch.errors.length > 0 });
      // OVS would commit the remaining messages after a failed add: check every add first.
      await conn.barrier(timeout);
      const openError = await opened;
      if (openError instanceof OpenFlowError) {
        throw new BundleError({ index: -1, error: openError.info, reason: `open: ${errorReason(openError.info)}` });
      }
      if (openError) throw openError;
      if (bad || watch.errors.length > 0) {
        await discard();
        throw failure(bad);
      }
      if (options.commitAfter) await options.commitAfter;
      try {
        await this.bundleCtrl({ bundleId, type: 'commit_request', flags }, timeout);
      } catch (err) {
        if (!(err instanceof OpenFlowError)) throw err;
        // OVS reports the failing message with its own xid first, then OFPBFC_MSG_FAILED for the commit.
        throw watch.errors.length > 0 ? failure() : new BundleError({ index: -1, error: err.info, reason: errorReason(err.info) });
      }
    } catch (err) {
      if (!(err instanceof BundleError) && conn.connected) await discard();
      throw err;
    } finally {
      watch.stop();
    }
  }

  private async bundleCtrl(bc: BundleCtrl, timeoutMs: number): Promise<void> {
    const xid = this.connection.nextXid();
    await this.connection.request(encodeBundleCtrl(xid, bc), xid, timeoutMs);
  }
  /** Reads flows back (flow stats), decoded; filtered by table, cookie/mask, match. */
  async dumpFlows(filter: FlowFilter = {}): Promise<DumpedFlow[]> {
    await this.ready();
    const xid = this.connection.nextXid();
    const req = encodeFlowStatsRequest(xid, {
      tableId: filter.table ?? OFPTT_ALL,
      cookie: filter.cookie,
      cookieMask: filter.cookieMask,
      outPort: filter.outPort,
      outGroup: filter.outGroup,
      match: filter.match ? encodeMatch(filter.match) : undefined,
    });
    const body = await this.connection.requestMultipart(req, xid, this.timeoutMs);
    return decodeFlowStatsBody(body).map((s) => ({
      table: s.tableId,
      priority: s.priority,
      cookie: s.cookie,
      idleTimeout: s.idleTimeout,
      hardTimeout: s.hardTimeout,
      flags: s.flags,
      match: decodeMatch(s.match).match,
      instructions: decodeInstructions(s.instructions),
      durationSec: s.durationSec,
      durationNsec: s.durationNsec,
      packetCount: s.packetCount,
      byteCount: s.byteCount,
    }));
  }

  /** Adds, modifies or deletes a group; throws OpenFlowError if the switch refuses it. */
  async groupMod(g: GroupSpec): Promise<void> {
    await this.ready();
    const w = new ByteWriter(256);
    const xid = this.connection.nextXid();
    writeGroupMod(w, xid, {
      command: g.command,
      type: g.type,
      groupId: g.groupId,
      buckets: g.buckets.map((b) => ({ ...b, actions: encodeActions(b.actions) })),
    });
    const errors = await this.connection.sendConfirmed(w.view(), xid, 1, this.timeoutMs);
    if (errors.length > 0) throw new OpenFlowError(errors[0], `group_mod ${g.command} group ${g.groupId}`);
  }

  /** Adds, modifies or deletes a meter (confirmed by a barrier). */
  async meterMod(m: MeterMod): Promise<void> {
    await this.ready();
    const xid = this.connection.nextXid();
    const errors = await this.connection.sendConfirmed(encodeMeterMod(xid, m), xid, 1, this.timeoutMs);
    if (errors.length > 0) throw new OpenFlowError(errors[0], `meter_mod ${m.command} meter ${m.meterId}`);
  }

  /** Sends a packet through the given actions (in_port default CONTROLLER). */
  async packetOut(p: { inPort?: number; actions: Action[]; data: Uint8Array }): Promise<void> {
    await this.ready();
    const xid = this.connection.nextXid();
    const buf = encodePacketOut(xid, { inPort: p.inPort, actions: encodeActions(p.actions), data: p.data });
    const errors = await this.connection.sendConfirmed(buf, xid, 1, this.timeoutMs);
    if (errors.length > 0) throw new OpenFlowError(errors[0], 'packet_out');
  }

  /** Ports of the bridge (port description multipart). */
  async portDesc(): Promise<PortDesc[]> {
    await this.ready();
    const xid = this.connection.nextXid();
    return decodePortDescBody(await this.connection.requestMultipart(encodePortDescRequest(xid), xid, this.timeoutMs));
  }

  async barrier(): Promise<void> {
    await this.ready();
    return this.connection.barrier(this.timeoutMs);
  }

  /** Echo round trip time (ms). */
  async echo(): Promise<number> {
    await this.ready();
    return this.connection.echo(this.timeoutMs);
  }

  /**
   * Calls `handler` for every packet_in, with its match (in_port, tunnel metadata, registers...)
   * decoded. Returns a function that unsubscribes.
   */
  onPacketIn(handler: (p: PacketIn & { fields: Match }) => void): () => void {
    const listener = (p: PacketIn): void => handler({ ...p, fields: decodeMatch(p.match).match });
    this.connection.on('packet_in', listener);
    return () => this.connection.off('packet_in', listener);
  }

  /**
   * Calls `handler` each time the connection comes back after it was lost (a restarted
   * ovs-vswitchd starts with no flows). Returns a function that unsubscribes.
   */
  onReconnected(handler: () => void): () => void {
    this.connection.on('reconnected', handler);
    return () => this.connection.off('reconnected', handler);
  }

  /**
   * Calls `handler` for every message from the switch that could not be decoded or handled (it
   * was dropped; the session goes on). Returns a function that unsubscribes.
   */
  onMessageError(handler: (err: Error, msg: Buffer) => void): () => void {
    this.connection.on('message_error', handler);
    return () => this.connection.off('message_error', handler);
  }

  /** Calls `handler` each time the connection is lost. Returns a function that unsubscribes. */
  onDisconnected(handler: () => void): () => void {
    this.connection.on('disconnected', handler);
    return () => this.connection.off('disconnected', handler);
  }

  /**
   * While the connection is down (e.g. ovs-vswitchd restarting), operations wait for it to come
   * back, up to the client timeout. Note that a restarted ovs-vswitchd starts with no flows: listen
   * with onReconnected to reinstall them.
   */
  private ready(): Promise<void> {
    return this.connection.waitConnected(this.timeoutMs);
  }

  close(): Promise<void> {
    return this.connection.close();
  }
}
