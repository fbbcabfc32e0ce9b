/**
 * Typed, idempotent helpers for the Open_vSwitch schema (vswitch.ovsschema): bridges, ports and
 * interfaces, and "wait until ovs-vswitchd applied it" the way ovs-vsctl does it (bump
 * `next_cfg` in the same transaction, then wait for `cur_cfg` to reach it).
 *
 * Each call reads the current state, writes only what differs (nothing at all when everything
 * matches) and guards the write with a `wait` operation, so a concurrent change by another client
 * makes the transaction fail and the call retries on fresh data instead of clobbering it.
 */
import type { MonitorHandle, OvsdbClient } from './client.js';
import { OvsdbError, TransactionError } from './errors.js';
import type { Condition, Operation, RowData, SelectResult } from './operations.js';
import { OvsMap, OvsSet, Uuid, namedUuid, valueEquals, type NamedUuid, type Row } from './values.js';

export const VSWITCH_DB = 'Open_vSwitch';

export interface BridgeSpec {
  name: string;
  /** "netdev" (userspace) or "system"; left alone when undefined. */
  datapathType?: string;
  failMode?: 'secure' | 'standalone';
  /** e.g. ["OpenFlow13"]; set exactly when given. */
  protocols?: readonly string[];
  /** Keys given are set; other keys are left alone. */
  otherConfig?: Record<string, string>;
  /** Keys given are set; other keys are left alone. */
  externalIds?: Record<string, string>;
}

export type InterfaceType = 'internal' | 'system' | 'vxlan' | 'gre' | 'geneve' | 'patch' | 'afxdp' | 'afxdp-nonpmd';

/** A port with one interface of the same name. */
export interface PortSpec {
  name: string;
  /** Interface type; "system" (an existing netdev) when omitted. */
  type?: InterfaceType;
  /** Interface options (remote_ip, key, local_ip, dst_port, ...); set exactly. */
  options?: Record<string, string>;
  ofportRequest?: number;
  /** Port external_ids: keys given are set, others left alone. */
  externalIds?: Record<string, string>;
  /** Interface external_ids: keys given are set, others left alone. */
  interfaceExternalIds?: Record<string, string>;
}

export interface ApplyOptions {
  /** Wait until ovs-vswitchd applied the change (default true). */
  wait?: boolean;
  /** Bound for that wait (default 30 s). */
  timeoutMs?: number;
}

export interface ApplyResult {
  /** False when the database already matched and nothing was written. */
  changed: boolean;
}

export interface InterfaceStatus {
  name: string;
  uuid: string;
  type: string;
  /** Assigned OpenFlow port number; undefined until ovs-vswitchd assigned one (or -1 on failure). */
  ofport: number | undefined;
  /** ovs-vswitchd's error for this interface, if it could not create it. */
  error: string | undefined;
  options: Record<string, string>;
}

export interface PortsResult extends ApplyResult {
  /** Status of every requested port's interface (read after the wait, so ofports are assigned). */
  interfaces: Map<string, InterfaceStatus>;
}

export interface PortInfo {
  name: string;
  uuid: string;
  externalIds: Record<string, string>;
  interfaces: string[];
}

/** ovs-vswitchd did not report the configuration as applied in time. */
export class VswitchTimeoutError extends OvsdbError {
  override name = 'VswitchTimeoutError';
}

const MAX_ATTEMPTS = 5;
/** Up to this many names are read with one select each; more read whole tables. */
const FEW_NAMES = 16;

export class Vswitch {
  private readonly clientOf: () => OvsdbClient;

  /**
   * @param client a client, or a function returning the current one (e.g. from a reconnecting
   *   session: `() => session.requireClient()`).
   */
  constructor(
    client: OvsdbClient | (() => OvsdbClient),
    private readonly db = VSWITCH_DB,
  ) {
    this.clientOf = typeof client === 'function' ? client : () => client;
  }

  /** The client calls go through right now. */
  get client(): OvsdbClient {
    return this.clientOf();
  }

  /** Creates the bridge (with its internal port) or updates what differs from `spec`. */
  ensureBridge(spec: BridgeSpec, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.retry(async () => {
      const [{ rows }] = await this.read([
        { op: 'select', table: 'Bridge', where: [['name', '==', spec.name]] },
      ]);
      const desired: RowData = {};
      if (spec.datapathType !== undefined) desired.datapath_type = spec.datapathType;
      if (spec.failMode !== undefined) desired.fail_mode = new OvsSet([spec.failMode]);
      if (spec.protocols !== undefined) desired.protocols = new OvsSet(spec.protocols);
      const existing = rows[0];
      if (!existing) {
        const ops: Operation[] = [
          absent('Bridge', [['name', '==', spec.name]]),
          { op: 'insert', table: 'Interface', 'uuid-name': 'iface', row: { name: spec.name, type: 'internal' } },
          { op: 'insert', table: 'Port', 'uuid-name': 'port', row: { name: spec.name, interfaces: namedUuid('iface') } },
          {
            op: 'insert',
            table: 'Bridge',
            'uuid-name': 'bridge',
            row: {
              ...desired,
              name: spec.name,
              ports: namedUuid('port'),
              other_config: OvsMap.fromRecord(spec.otherConfig ?? {}),
              external_ids: OvsMap.fromRecord(spec.externalIds ?? {}),
            },
          },
          { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'insert', namedUuid('bridge')]] },
        ];
        await this.commit(ops, options);
        return { changed: true };
      }
      const update = differing(existing, desired);
      mergeMap(existing, 'other_config', spec.otherConfig, update);
      mergeMap(existing, 'external_ids', spec.externalIds, update);
      if (Object.keys(update).length === 0) return { changed: false };
      await this.commit([{ op: 'update', table: 'Bridge', where: [byUuid(existing)], row: update }], options);
      return { changed: true };
    });
  }

  /** Deletes a bridge and its ports; does nothing if it does not exist. */
  deleteBridge(name: string, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.retry(async () => {
      const [{ rows }] = await this.read([{ op: 'select', table: 'Bridge', where: [['name', '==', name]], columns: ['_uuid'] }]);
      if (!rows[0]) return { changed: false };
      await this.commit(
        [{ op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'delete', rows[0]._uuid]] }],
        options,
      );
      return { changed: true };
    });
  }

  /** Ensures one port (see {@link ensurePorts}). */
  async ensurePort(bridge: string, spec: PortSpec, options: ApplyOptions = {}): Promise<PortsResult> {
    return this.ensurePorts(bridge, [spec], options);
  }

  /**
   * Ensures ports exist on `bridge` with the given interface settings, in one transaction. Ports
   * of the bridge that are not listed are left alone. A listed port that exists on another bridge
   * is an error.
   */
  async ensurePorts(bridge: string, specs: readonly PortSpec[], options: ApplyOptions = {}): Promise<PortsResult> {
    const names = new Set<string>();
    for (const { name } of specs) {
      if (names.has(name)) throw new OvsdbError(`ensurePorts on ${bridge}: port ${name} is listed twice`);
      names.add(name);
    }
    return this.retry(async () => {
      const state = await this.readPorts(bridge, [...names]);
      const ops: Operation[] = [];
      const added: NamedUuid[] = [];
      specs.forEach((spec, i) => {
        const port = state.portsByName.get(spec.name);
        if (!port) {
          ops.push(
            { op: 'insert', table: 'Interface', 'uuid-name': `i${i}`, row: interfaceRow(spec) },
            {
              op: 'insert',
              table: 'Port',
              'uuid-name': `p${i}`,
              row: { name: spec.name, interfaces: namedUuid(`i${i}`), external_ids: OvsMap.fromRecord(spec.externalIds ?? {}) },
            },
          );
          added.push(namedUuid(`p${i}`));
          return;
        }
        if (!state.bridgePorts.has(String(port._uuid))) {
          throw new OvsdbError(`port ${spec.name} exists on another bridge than ${bridge}`);
        }
        const portUpdate: RowData = {};
        mergeMap(port, 'external_ids', spec.externalIds, portUpdate);
        if (Object.keys(portUpdate).length) ops.push({ op: 'update', table: 'Port', where: [byUuid(port)], row: portUpdate });
        const iface = (port.interfaces as OvsSet).values
          .map((u) => state.interfaces.get(String(u)))
          .find((r) => r?.name === spec.name);
        if (!iface) {
          throw new OvsdbError(`port ${spec.name} on ${bridge} has no interface named ${spec.name}`);
        }
        const ifUpdate = differing(iface, interfaceRow(spec, false));
        mergeMap(iface, 'external_ids', spec.interfaceExternalIds, ifUpdate);
        if (Object.keys(ifUpdate).length) ops.push({ op: 'update', table: 'Interface', where: [byUuid(iface)], row: ifUpdate });
      });
      if (added.length) {
        ops.unshift(portsUnchanged(state.bridge));
        ops.push({ op: 'mutate', table: 'Bridge', where: [byUuid(state.bridge)], mutations: [['ports', 'insert', new OvsSet(added)]] });
      }
      if (ops.length) await this.commit(ops, options);
      const interfaces = options.wait === false ? new Map<string, InterfaceStatus>() : await this.interfaceStatus([...names]);
      return { changed: ops.length > 0, interfaces };
    });
  }

  /**
   * Adds a port that does not exist yet without reading first: one transaction that asserts the
   * name is free (and, with `ofportRequest`, that no interface has or requests that number),
   * inserts the port and bumps next_cfg. Resolves once ovsdb-server committed it (undefined when
   * an assertion failed: use {@link ensurePorts}); `applied` then settles when ovs-vswitchd has
   * applied it, with the interface's status. So a caller that chose the OpenFlow port number can
   * work with it while ovs-vswitchd adds the port.
   */
  async insertPort(bridge: string, spec: PortSpec, options: Omit<ApplyOptions, 'wait'> = {}): Promise<{ uuid: string; applied: Promise<InterfaceStatus | undefined> } | undefined> {
    const watching = this.watchCurCfg();
    const request = spec.ofportRequest;
    const ops: Operation[] = [
      absent('Port', [['name', '==', spec.name]]),
      absent('Interface', [['name', '==', spec.name]]),
      ...(request === undefined ? [] : [absent('Interface', [['ofport', '==', request]]), absent('Interface', [['ofport_request', '==', request]])]),
      { op: 'insert', table: 'Interface', 'uuid-name': 'i0', row: interfaceRow(spec) },
      { op: 'insert', table: 'Port', 'uuid-name': 'p0', row: { name: spec.name, interfaces: namedUuid('i0'), external_ids: OvsMap.fromRecord(spec.externalIds ?? {}) } },
      { op: 'mutate', table: 'Bridge', where: [['name', '==', bridge]], mutations: [['ports', 'insert', new OvsSet([namedUuid('p0')])]] },
      { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
      { op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] },
    ];
    let nextCfg: unknown;
    let uuid: string;
    try {
      const results = await this.client.transact(this.db, ops);
      uuid = String((results[ops.length - 4] as { uuid?: unknown }).uuid);
      // A bridge that does not exist leaves the new rows unreferenced: ovsdb-server drops them.
      if ((results[ops.length - 3] as { count?: number }).count !== 1) throw new OvsdbError(`bridge ${bridge} does not exist`);
      nextCfg = (results[ops.length - 1] as { rows: Row[] }).rows[0]?.next_cfg;
      if (typeof nextCfg !== 'number') throw new OvsdbError('Open_vSwitch table has no row; run "ovs-vsctl init"');
    } catch (err) {
      void watching.then((w) => w.handle.cancel()).catch(() => undefined);
      if (err instanceof TransactionError && err.op?.op === 'wait') return undefined;
      throw err;
    }
    const cfg = nextCfg;
    const applied = this.waitApplied(cfg, options.timeoutMs, watching).then(async () => (await this.interfaceStatus([spec.name])).get(spec.name));
    applied.catch(() => undefined);
    return { uuid, applied };
  }

  /**
   * Sets keys of the external_ids of the port with row `uuid` and name `name` (as
   * {@link insertPort} returned it), keeping its other keys; one transaction, no read, no wait
   * for ovs-vswitchd (which does not use them). False when no such row exists.
   */
  async setPortExternalIds(name: string, uuid: string, ids: Record<string, string>): Promise<boolean> {
    const row = new Uuid(uuid);
    const where: Condition[] = [['_uuid', '==', row], ['name', '==', name]];
    const keys = new OvsSet(Object.keys(ids));
    const results = await this.client.transact(this.db, [
      { op: 'mutate', table: 'Port', where, mutations: [['external_ids', 'delete', keys]] },
      { op: 'mutate', table: 'Port', where, mutations: [['external_ids', 'insert', OvsMap.fromRecord(ids)]] },
    ]);
    return (results[1] as { count?: number }).count === 1;
  }

  /**
   * Removes the port with row `uuid` (as {@link insertPort} returned it) and name `name` in one
   * transaction, without reading first, and waits for ovs-vswitchd. False when no such row
   * exists (nothing changed: use {@link removePorts}).
   */
  async removePortRow(bridge: string, name: string, uuid: string, options: ApplyOptions = {}): Promise<boolean> {
    const row = new Uuid(uuid);
    const ops: Operation[] = [
      { op: 'select', table: 'Port', where: [['_uuid', '==', row], ['name', '==', name]], columns: ['name'] },
      { op: 'mutate', table: 'Bridge', where: [['name', '==', bridge]], mutations: [['ports', 'delete', new OvsSet([row])]] },
    ];
    // The select shows whether the row was there; the mutate alone cannot tell.
    const verify = (results: readonly unknown[]) => (results[0] as SelectResult).rows.length === 1;
    if (options.wait === false) return verify(await this.client.transact(this.db, ops));
    let found = false;
    await this.commit(ops, options, (results) => (found = verify(results)));
    return found;
  }

  /** Removes ports from a bridge; names that are not there are ignored. */
  removePorts(bridge: string, names: readonly string[], options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.retry(async () => {
      const state = await this.readPorts(bridge, names);
      const doomed = names.map((n) => state.portsByName.get(n)).filter((p): p is Row => !!p && state.bridgePorts.has(String(p._uuid)));
      if (doomed.length === 0) return { changed: false };
      await this.commit(
        [
          portsUnchanged(state.bridge),
          { op: 'mutate', table: 'Bridge', where: [byUuid(state.bridge)], mutations: [['ports', 'delete', new OvsSet(doomed.map((p) => p._uuid as Uuid))]] },
        ],
        options,
      );
      return { changed: true };
    });
  }

  /** Ports whose external_ids contain all the given pairs. */
  async findPorts(externalIds: Record<string, string>): Promise<PortInfo[]> {
    const [{ rows }] = await this.read([
      { op: 'select', table: 'Port', where: [['external_ids', 'includes', OvsMap.fromRecord(externalIds)]], columns: ['_uuid', 'name', 'external_ids', 'interfaces'] },
    ]);
    return rows.map((r) => ({
      name: r.name as string,
      uuid: String(r._uuid),
      externalIds: (r.external_ids as OvsMap<string, string>).toRecord(),
      interfaces: (r.interfaces as OvsSet).values.map(String),
    }));
  }

  /** Current status (ofport, error, type, options) of the named interfaces that exist. */
  async interfaceStatus(names: readonly string[]): Promise<Map<string, InterfaceStatus>> {
    const wanted = new Set(names);
    const wheres: Condition[][] = names.length <= FEW_NAMES ? names.map((n) => [['name', '==', n]]) : [[]];
    const results = await this.read(
      wheres.map((where): Operation => ({ op: 'select', table: 'Interface', where, columns: ['_uuid', 'name', 'type', 'ofport', 'error', 'options'] })),
    );
    const out = new Map<string, InterfaceStatus>();
    for (const r of results.flatMap((res) => (res as SelectResult).rows)) {
      const name = r.name as string;
      if (!wanted.has(name)) continue;
      out.set(name, {
        name,
        uuid: String(r._uuid),
        type: r.type as string,
        ofport: (r.ofport as OvsSet<number>).first(),
        error: (r.error as OvsSet<string>).first(),
        options: (r.options as OvsMap<string, string>).toRecord(),
      });
    }
    return out;
  }

  /**
   * Resolves once ovs-vswitchd reports `cur_cfg >= nextCfg` (it has applied that configuration).
   * Watches cur_cfg with a monitor instead of polling; `watching` is one opened earlier.
   */
  async waitApplied(nextCfg: number, timeoutMs = 30_000, watching?: Promise<CurCfgWatch>): Promise<void> {
    const watch = await (watching ?? this.watchCurCfg());
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        watch.wake = () => {
          if (watch.cur >= nextCfg) resolve();
        };
        watch.wake();
        timer = setTimeout(
          () =>
            reject(
              new VswitchTimeoutError(
                `ovs-vswitchd did not apply configuration ${nextCfg} within ${timeoutMs} ms (cur_cfg=${watch.cur}); is ovs-vswitchd running?`,
              ),
            ),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
      // Nothing waits on the answer to monitor_cancel; later requests queue behind it anyway.
      void watch.handle.cancel().catch(() => undefined);
    }
  }

  /** A monitor on cur_cfg that calls `wake` on every change. */
  private async watchCurCfg(): Promise<CurCfgWatch> {
    const watch = { cur: -1, wake: () => undefined } as Omit<CurCfgWatch, 'handle'>;
    const take = (rows: Iterable<{ row?: Record<string, unknown> }>): void => {
      for (const u of rows) {
        if (typeof u.row?.cur_cfg === 'number') watch.cur = u.row.cur_cfg;
      }
      watch.wake();
    };
    const handle = await this.client.openMonitor(
      this.db,
      { Open_vSwitch: { columns: ['cur_cfg'] } },
      { onUpdate: (u) => take(u.Open_vSwitch ?? []), methods: ['monitor_cond', 'monitor'] },
    );
    take(handle.initial.Open_vSwitch ?? []);
    handle.resume();
    return Object.assign(watch, { handle });
  }

  // ---- internals ----

  private async read<const Ops extends readonly Operation[]>(ops: Ops) {
    const client = this.client;
    // Selected rows decode into sets/maps only with the schema (a one-element set looks like an atom).
    if (!client.schemaOf(this.db)) await client.getSchema(this.db);
    return client.transact(this.db, ops);
  }

  /** Runs `ops`; with waiting, also bumps next_cfg in the same transaction and waits for cur_cfg. */
  private async commit(ops: Operation[], options: ApplyOptions, check?: (results: readonly unknown[]) => boolean): Promise<void> {
    if (options.wait === false) {
      await this.client.transact(this.db, ops);
      return;
    }
    // The cur_cfg monitor is opened alongside the transaction: one round trip, not two.
    const watching = this.watchCurCfg();
    let nextCfg: unknown;
    try {
      const results = await this.client.transact(this.db, [
        ...ops,
        { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
        { op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] },
      ]);
      const sel = results[results.length - 1] as { rows: Row[] };
      nextCfg = sel.rows[0]?.next_cfg;
      if (typeof nextCfg !== 'number') throw new OvsdbError('Open_vSwitch table has no row; run "ovs-vsctl init"');
      if (check && !check(results)) {
        // Nothing to wait for: the caller learns that nothing was there.
        void watching.then((w) => w.handle.cancel()).catch(() => undefined);
        return;
      }
    } catch (err) {
      void watching.then((w) => w.handle.cancel()).catch(() => undefined);
      throw err;
    }
    await this.waitApplied(nextCfg, options.timeoutMs, watching);
  }

  /** Reads the bridge and the named ports/interfaces (by name for a few, whole tables for many). */
  private async readPorts(bridge: string, names: readonly string[]): Promise<PortsState> {
    const portCols = ['_uuid', 'name', 'interfaces', 'external_ids'];
    const ifCols = ['_uuid', 'name', 'type', 'options', 'ofport_request', 'external_ids'];
    const byName = names.length <= FEW_NAMES;
    const wheres: Condition[][] = byName ? names.map((n) => [['name', '==', n]]) : [[]];
    const results = await this.read([
      { op: 'select', table: 'Bridge', where: [['name', '==', bridge]], columns: ['_uuid', 'ports'] },
      ...wheres.map((where): Operation => ({ op: 'select', table: 'Port', where, columns: portCols })),
      ...wheres.map((where): Operation => ({ op: 'select', table: 'Interface', where, columns: ifCols })),
    ]);
    const rowsOf = (from: number): Row[] =>
      results.slice(from, from + wheres.length).flatMap((r) => (r as SelectResult).rows);
    const br = (results[0] as SelectResult).rows[0];
    if (!br) throw new OvsdbError(`bridge ${bridge} does not exist`);
    return {
      bridge: br,
      bridgePorts: new Set((br.ports as OvsSet).values.map(String)),
      portsByName: new Map(rowsOf(1).map((r) => [r.name as string, r])),
      interfaces: new Map(rowsOf(1 + wheres.length).map((r) => [String(r._uuid), r])),
    };
  }

  /** Retries when a guard `wait` failed because another client changed the same rows meanwhile. */
  private async retry<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        const raced = err instanceof TransactionError && err.op?.op === 'wait' && err.error === 'timed out';
        if (!raced || n >= MAX_ATTEMPTS) throw err;
      }
    }
  }
}

/** cur_cfg as last reported, and who to tell when it changes. */
interface CurCfgWatch {
  handle: MonitorHandle;
  cur: number;
  wake: () => void;
}

interface PortsState {
  bridge: Row;
  bridgePorts: Set<string>;
  portsByName: Map<string, Row>;
  interfaces: Map<string, Row>;
}

function interfaceRow(spec: PortSpec, withName = true): RowData {
  const row: RowData = {
    type: spec.type === 'system' || spec.type === undefined ? '' : spec.type,
    options: OvsMap.fromRecord(spec.options ?? {}),
    ofport_request: new OvsSet(spec.ofportRequest === undefined ? [] : [spec.ofportRequest]),
  };
  if (withName) {
    row.name = spec.name;
    row.external_ids = OvsMap.fromRecord(spec.interfaceExternalIds ?? {});
  }
  return row;
}

/** Columns of `desired` whose value differs from `row`. */
function differing(row: Row, desired: RowData): RowData {
  const out: RowData = {};
  for (const [col, v] of Object.entries(desired)) {
    if (!(col in row) || !valueEquals(row[col], v)) out[col] = v;
  }
  return out;
}

/** Adds `col` = old map with the given keys set, to `update`, if any key differs. */
function mergeMap(row: Row, col: string, wanted: Record<string, string> | undefined, update: RowData): void {
  if (!wanted) return;
  const old = row[col] instanceof OvsMap ? (row[col] as OvsMap<string, string>).toRecord() : {};
  if (Object.entries(wanted).every(([k, v]) => old[k] === v)) return;
  update[col] = OvsMap.fromRecord({ ...old, ...wanted });
}

function byUuid(row: Row): Condition {
  return ['_uuid', '==', row._uuid as Uuid];
}

/** Guard: the table has no rows matching `where`. */
function absent(table: string, where: Condition[]): Operation {
  return { op: 'wait', table, where, columns: ['_uuid'], until: '==', rows: [], timeout: 0 };
}

/** Guard: the bridge's port set is still what was read. */
function portsUnchanged(bridge: Row): Operation {
  return { op: 'wait', table: 'Bridge', where: [byUuid(bridge)], columns: ['ports'], until: '==', rows: [{ ports: bridge.ports }], timeout: 0 };
}
