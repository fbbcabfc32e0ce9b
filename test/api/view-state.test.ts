// The agent's view: directoryVersion moves with networks and endpoints, not with rules or routes
// (the agent rebuilds its DNS directory only when it moved).
import { describe, expect, it } from 'vitest';
import { ViewState } from '../../src/api/view-state.js';
import type { EndpointInfo, Network, Policy, WatchEvent } from '../../src/api/types.js';

const msg = (revision: number, events: WatchEvent[], reset = false) => ({ revision, reset, partial: false, events, storeId: 's' });

describe('view state', () => {
  it('bumps directoryVersion for network and endpoint changes only', () => {
    const v = new ViewState();
    v.apply(msg(1, [{ network: { name: 'blue' } as Network }], true));
    const afterNetwork = v.directoryVersion;
    expect(afterNetwork).toBeGreaterThan(0);
    v.apply(msg(2, [{ policy: { network: 'blue', name: 'p' } as Policy }, { route: { network: 'blue', prefix: '10.0.0.0/26' } as never }]));
    expect(v.directoryVersion).toBe(afterNetwork);
    v.apply(msg(3, [{ endpoint: { network: 'blue', containerId: 'c1' } as EndpointInfo }]));
    expect(v.directoryVersion).toBe(afterNetwork + 1);
    v.apply(msg(4, [{ endpointRemoved: { network: 'blue', containerId: 'c1' } }]));
    expect(v.directoryVersion).toBe(afterNetwork + 2);
  });
});
