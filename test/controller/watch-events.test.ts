import { describe, expect, it } from 'vitest';
import { codecs } from '../../src/api/proto.js';
import type { WatchEvent } from '../../src/api/types.js';
import { ViewState } from '../../src/api/view-state.js';
import { toEndpointInfo, toNetwork } from '../../src/controller/convert.js';
import type { Controller } from '../../src/controller/controller.js';
import { hostView } from '../../src/controller/routes.js';
import { eventFrame, watchMessage } from '../../src/controller/watch-encoding.js';
import { viewEvents, type EventEncoder } from '../../src/controller/watch-events.js';
import { memoryController, registerHosts } from './fixtures.js';

const asObjects: EventEncoder<WatchEvent> = {
  event: (e) => e,
  endpoint: (rec) => ({ endpoint: toEndpointInfo(rec) }),
  network: (net) => ({ network: toNetwork(net) }),
  route: (_source, _owner, route) => ({ route }),
};

/** An agent model fed straight from viewEvents (no transport). */
class Follower {
  view = new ViewState();
  known = new Set<string>();
  revision = 0;
  constructor(
    private readonly c: Controller,
    readonly host: string,
  ) {}
  sync(): WatchEvent[] {
    const changed = this.revision === 0 ? null : this.c.changes.keysSince(this.revision);
    const current = new Set(this.c.state.networksOf(this.host));
    const events = [...viewEvents(this.c.state, this.host, changed === null ? new Set() : this.known, current, changed, asObjects)];
    this.view.apply({ revision: this.c.revision(), reset: changed === null, partial: false, events, storeId: '' });
    this.known = current;
    this.revision = this.c.revision();
    return events;
  }
  expected(): unknown {
    return hostView(this.c.state, this.host).networks.map((n) => ({
      network: n.network,
      routes: [...n.routes].sort((a, b) => a.prefix.localeCompare(b.prefix)),
      endpoints: [...n.endpoints].sort((a, b) => a.containerId.localeCompare(b.containerId)),
    }));
  }
}

describe('view deltas', () => {
  it('bring an agent from any revision to exactly the computed view', async () => {
    const c = await memoryController(1000);
    await registerHosts(c, 3);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv4BlockPrefix: 28 });
    await c.createNetwork({ name: 'red', ipv4Cidr: '10.2.0.0/24', ipv4BlockPrefix: 29, ipv6Cidr: 'fd00:2::/64' });
    const followers = ['h1', 'h2', 'h3'].map((h) => new Follower(c, h));
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const live: [string, string][] = [];
    for (let step = 0; step < 200; step++) {
      const r = rnd(10);
      if (r < 3 && live.length > 0) {
        const [[n, id]] = live.splice(rnd(live.length), 1);
        await c.deleteEndpoint(n, id);
      } else if (r === 3) {
        // A host goes down or comes back.
        const h = `h${1 + rnd(3)}`;
        if (c.state.hosts.get(h)!.rec.up) await c.checkLiveness(Date.now() + 10_000).then(() => Promise.all(['h1', 'h2', 'h3'].filter((x) => x !== h).map((x) => c.heartbeat(x))));
        else await c.heartbeat(h);
      } else {
        const n = rnd(2) === 0 ? 'blue' : 'red';
        const id = `e${step}`;
        // Some static addresses high in the range: exceptions, inside or outside blocks.
        const used = c.state.networks.get(n)!.v4.used;
        const high = [...Array(50).keys()].map((k) => 200 + k).find((k) => !used.has(BigInt((10 << 24) | ((n === 'blue' ? 1 : 2) << 16) | k)));
        const ipv4 = rnd(6) === 0 && high !== undefined ? `10.${n === 'blue' ? 1 : 2}.0.${high}` : undefined;
        await c.createEndpoint({ network: n, host: `h${1 + rnd(3)}`, containerId: id, ipv4 });
        live.push([n, id]);
      }
      // Followers sync at different paces, so deltas span different numbers of revisions.
      for (const [i, f] of followers.entries()) {
        if (step % (i + 1) === 0) {
          f.sync();
          expect(f.view.toJSON()).toEqual(f.expected());
        }
      }
    }
  });

  it('sends nothing to a host whose networks did not change', async () => {
    const c = await memoryController();
    await registerHosts(c, 3);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    await c.createNetwork({ name: 'red', ipv4Cidr: '10.2.0.0/24' });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    const f = new Follower(c, 'h1');
    f.sync();
    await c.createEndpoint({ network: 'red', host: 'h2', containerId: 'b' });
    expect(f.sync()).toEqual([]);
  });
});

describe('watch message encoding', () => {
  it('concatenated frames decode as one WatchResponse', () => {
    const events: WatchEvent[] = [
      { networkRemoved: 'old' },
      { route: { network: 'n', prefix: '10.0.0.0/26', host: 'h2', vtep: '192.0.2.2', kind: 'ROUTE_KIND_BLOCK' } },
      { endpointRemoved: { network: 'n', containerId: 'c' } },
    ];
    const frames = events.map(eventFrame);
    const bytes = frames.reduce((s, f) => s + f.length, 0);
    const msg = codecs.watchResponse.decode(watchMessage(12345678901, true, true, frames, bytes));
    expect(msg.revision).toBe(12345678901);
    expect(msg.reset).toBe(true);
    expect(msg.partial).toBe(true);
    expect(msg.events.map((e) => e.kind)).toEqual(['networkRemoved', 'route', 'endpointRemoved']);
    expect(msg.events[1].route).toEqual(events[1].route);
  });
});
