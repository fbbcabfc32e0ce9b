// Property-based: the OVSDB codec and client, fed what a broken or hostile ovsdb-server could
// send: the JSON framing on real captured server bytes (mutated, split anywhere), JSON-RPC
// classification and update parsing on mutated real updates, the cache applying them, and a
// client with an open monitor receiving them. Only the codec's typed errors come out, and the
// client confines them to its connection.
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TableCache } from '../../src/ovsdb/cache.js';
import { OvsdbClient } from '../../src/ovsdb/client.js';
import { OvsdbError } from '../../src/ovsdb/errors.js';
import { ProtocolError, classifyMessage } from '../../src/ovsdb/jsonrpc/messages.js';
import { FramingError, JsonStreamParser } from '../../src/ovsdb/jsonrpc/parser.js';
import { SchemaError, parseSchema } from '../../src/ovsdb/schema.js';
import { UpdateFormatError, normalizeUpdates1, normalizeUpdates2 } from '../../src/ovsdb/updates.js';
import { OvsdbValueError } from '../../src/ovsdb/values.js';
import { mutatedAny, onlyThrows } from '../common/mutate.js';

const traffic = readFileSync(new URL('./fixtures/server-traffic.bin', import.meta.url));
const schema = parseSchema(JSON.parse(readFileSync(new URL('./fixtures/vswitch.ovsschema', import.meta.url), 'utf8')));
const RUNS = { numRuns: 150, seed: 18 };

const U1 = '11111111-1111-1111-1111-111111111111';
const U2 = '22222222-2222-2222-2222-222222222222';
const update2 = {
  Bridge: {
    [U1]: { insert: { name: 'br-int', ports: ['set', [['uuid', U2]]], external_ids: ['map', [['loom', '1']]], datapath_type: 'netdev' } },
  },
  Port: { [U2]: { insert: { name: 'br-int', interfaces: ['uuid', U2] } } },
  Interface: { [U2]: { initial: { name: 'br-int', ofport: 65534, type: 'internal' } } },
};
const modify2 = { Bridge: { [U1]: { modify: { external_ids: ['map', [['loom', '2']]], ports: ['set', []] } } }, Interface: { [U2]: { delete: null } } };
const update1 = { Bridge: { [U1]: { new: { name: 'br-int' }, old: { name: 'br-x' } } }, Port: { [U2]: { old: { name: 'p' } } } };

/** Replaces the k-th node (depth first) of `json` with `replacement`, or removes it from its parent. */
function mutateJson(json: unknown, k: number, replacement: unknown, remove: boolean): unknown {
  let i = 0;
  const walk = (v: unknown): unknown => {
    if (i++ === k) return remove ? undefined : replacement;
    if (Array.isArray(v)) return v.map(walk).filter((x) => x !== undefined);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, x] of Object.entries(v)) {
        const m = walk(x);
        if (m !== undefined) out[key] = m;
      }
      return out;
    }
    return v;
  };
  return walk(json);
}

const mutatedJson = (valids: unknown[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...valids), fc.nat({ max: 40 }), fc.jsonValue({ maxDepth: 3 }), fc.boolean())
      .map(([v, k, r, rm]) => mutateJson(v, k, r, rm)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  );

describe('OVSDB JSON framing (property-based)', () => {
  it('splits real server traffic the same wherever the reads are cut', () => {
    const whole = new JsonStreamParser().push(traffic);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: traffic.length - 1 }), { maxLength: 12 }), (cuts) => {
        const parser = new JsonStreamParser();
        const out: unknown[] = [];
        let from = 0;
        for (const at of [...cuts.sort((a, b) => a - b), traffic.length]) {
          out.push(...parser.push(traffic.subarray(from, at)));
          from = at;
        }
        expect(out).toEqual(whole);
      }),
      RUNS,
    );
  });

  it('throws only FramingError on mutated traffic, and never holds more than its limit', () => {
    fc.assert(
      fc.property(fc.array(mutatedAny([traffic, traffic.subarray(0, 200)]), { minLength: 1, maxLength: 4 }), (chunks) => {
        const parser = new JsonStreamParser(4096);
        onlyThrows([FramingError], () => {
          for (const c of chunks) parser.push(c);
        });
        expect(parser.pendingBytes).toBeLessThanOrEqual(4096 + traffic.length);
      }),
      RUNS,
    );
  });
});

describe('OVSDB messages and updates (property-based)', () => {
  it('classifyMessage throws only ProtocolError', () => {
    const valid = [{ id: 1, result: [], error: null }, { id: null, method: 'update2', params: ['m', update2] }, { id: 'echo', method: 'echo', params: [] }];
    fc.assert(fc.property(mutatedJson(valid), (json) => onlyThrows([ProtocolError], () => classifyMessage(json))), RUNS);
  });

  it('normalizeUpdates1/2 throw only UpdateFormatError', () => {
    fc.assert(fc.property(mutatedJson([update2, modify2]), (json) => onlyThrows([UpdateFormatError], () => normalizeUpdates2(json))), RUNS);
    fc.assert(fc.property(mutatedJson([update1]), (json) => onlyThrows([UpdateFormatError], () => normalizeUpdates1(json, false))), RUNS);
  });

  it('the cache applies mutated updates or throws the codec\'s typed errors', () => {
    fc.assert(
      fc.property(fc.array(mutatedJson([update2, modify2]), { minLength: 1, maxLength: 4 }), (updates) => {
        const cache = new TableCache(schema, { Bridge: undefined, Port: undefined, Interface: undefined });
        onlyThrows([OvsdbError, OvsdbValueError, SchemaError], () => {
          cache.resync(normalizeUpdates2(update2));
          for (const u of updates) cache.apply(normalizeUpdates2(u));
        });
      }),
      RUNS,
    );
  });
});

describe('OVSDB client fed mutated notifications (property-based)', () => {
  let dir: string;
  let server: net.Server;
  let send: ((text: string) => void) | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ovsdb-fuzz-'));
    server = net.createServer((sock) => {
      sock.on('error', () => undefined);
      const parser = new JsonStreamParser();
      send = (text) => void sock.write(text);
      sock.on('data', (b: Buffer) => {
        for (const m of parser.push(b) as Array<{ id: unknown; method?: string; params?: unknown[] }>) {
          if (m.method === 'monitor_cond') sock.write(JSON.stringify({ id: m.id, result: update2, error: null }));
          else if (m.method === 'echo') sock.write(JSON.stringify({ id: m.id, result: m.params, error: null }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(join(dir, 'db.sock'), r));
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('either stays usable or closes with an error; nothing escapes into the process', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutatedJson([update2, modify2]), { minLength: 1, maxLength: 4 }), async (updates) => {
        const client = await OvsdbClient.connect(`unix:${join(dir, 'db.sock')}`);
        const closed = new Promise<Error | undefined>((r) => client.once('close', r));
        const cache = new TableCache(schema, { Bridge: undefined, Port: undefined, Interface: undefined });
        const handle = await client.openMonitor('Open_vSwitch', { Bridge: {}, Port: {}, Interface: {} }, {
          methods: ['monitor_cond'],
          onUpdate: (u) => cache.apply(u), // throws on updates that do not fit: the client must confine it
        });
        cache.resync(handle.initial);
        handle.resume();
        send!(updates.map((u) => JSON.stringify({ id: null, method: 'update2', params: [handle.id, u] })).join(''));
        const outcome = await Promise.race([client.echo('alive').then(() => 'usable' as const, () => 'closed' as const), closed.then(() => 'closed' as const)]);
        if (outcome === 'closed') expect((await closed)?.message).toBeTruthy();
        client.close();
      }),
      { numRuns: 25, seed: 18 },
    );
  });
});
