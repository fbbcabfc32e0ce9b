import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { EndpointReclaimer, type ReclaimerDeps, type StaleEndpoint } from '../../src/agent/stale-endpoints.js';
import { createAgentMetrics } from '../../src/agent/metrics.js';

const stale = (containerId: string): StaleEndpoint => ({
  hostIfname: `lm-${containerId}`,
  record: { network: 'blue', containerId, ifname: 'eth0', netns: `/run/netns/${containerId}`, mac: '02:42:00:00:00:01', ipv4: '198.18.0.2', ipv6: '', ports: '', dnsServers: '' },
  reason: 'container namespace does not exist',
  found: 'recovery',
});

describe('EndpointReclaimer (retry logic; the OVS and controller parts are tested in stale-endpoints.int.test.ts)', () => {
  let connected: boolean;
  let events: string[];
  let controllerFailures: number;
  let deps: ReclaimerDeps;
  let metrics: ReturnType<typeof createAgentMetrics>;
  let reclaimer: EndpointReclaimer;

  beforeEach(() => {
    vi.useFakeTimers();
    connected = false;
    events = [];
    controllerFailures = 0;
    metrics = createAgentMetrics(() => ({ endpoints: 0, connected: true }));
    deps = {
      connected: () => connected,
      deleteAtController: async (ep) => {
        if (controllerFailures > 0) {
          controllerFailures--;
          events.push(`controller-fail ${ep.record.containerId}`);
          throw new Error('UNAVAILABLE');
        }
        events.push(`controller ${ep.record.containerId}`);
        return 'deleted';
      },
      removeLocal: async (ep) => void events.push(`local ${ep.record.containerId}`),
      log: pino({ level: 'silent' }),
      metrics,
    };
    reclaimer = new EndpointReclaimer(deps);
  });
  afterEach(() => {
    reclaimer.stop();
    vi.useRealTimers();
  });

  const reclaimed = async () => (await metrics.registry.getSingleMetricAsString('loom_agent_endpoints_reclaimed_total')).match(/found="recovery"} (\d+)/)?.[1];

  it('waits until the agent is connected, then deletes at the controller before removing the port', async () => {
    reclaimer.add(stale('a'));
    reclaimer.add(stale('a'));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(events).toEqual([]);
    connected = true;
    await vi.advanceTimersByTimeAsync(600);
    expect(events).toEqual(['controller a', 'local a']);
    expect(reclaimer.pendingCount).toBe(0);
    expect(await reclaimed()).toBe('1');
  });

  it('retries with growing backoff until the controller answers, never removing the port first', async () => {
    connected = true;
    controllerFailures = 3;
    reclaimer.add(stale('b'));
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(['controller-fail b']);
    await vi.advanceTimersByTimeAsync(499);
    expect(events).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1 + 1000 + 2000);
    expect(events).toEqual(['controller-fail b', 'controller-fail b', 'controller-fail b', 'controller b', 'local b']);
    expect(reclaimer.pendingCount).toBe(0);
  });

  it('an attach does a pending reclaim first, none starts while it is attached again, and nothing once stopped', async () => {
    reclaimer.add(stale('c'));
    await reclaimer.claim('c', 'eth0');
    expect(events).toEqual(['controller c', 'local c']);
    expect(reclaimer.pendingCount).toBe(0);
    reclaimer.add(stale('c'));
    connected = true;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(events).toEqual(['controller c', 'local c']);
    reclaimer.release('c', 'eth0');
    reclaimer.add(stale('d'));
    reclaimer.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(events).toEqual(['controller c', 'local c']);
  });

  it('an attach whose pending reclaim fails is refused, and the reclaim is retried after it', async () => {
    controllerFailures = 1;
    reclaimer.add({ ...stale('f'), found: 'detach' });
    expect(reclaimer.pendingNetwork('f', 'eth0')).toBe('blue');
    await expect(reclaimer.claim('f', 'eth0')).rejects.toThrow('UNAVAILABLE');
    expect(events).toEqual(['controller-fail f']);
    expect(reclaimer.pendingCount).toBe(1);
    connected = true;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(events).toEqual(['controller-fail f', 'controller f', 'local f']);
    expect(reclaimer.pendingNetwork('f', 'eth0')).toBeUndefined();
    expect((await metrics.registry.getSingleMetricAsString('loom_agent_endpoints_reclaimed_total')).match(/found="detach"} (\d+)/)?.[1]).toBe('1');
  });

  it('an attach of a container being reclaimed waits until the reclaim is done', async () => {
    connected = true;
    let unblock!: () => void;
    deps.deleteAtController = async () => {
      events.push('controller started');
      await new Promise<void>((r) => (unblock = r));
      events.push('controller done');
      return 'deleted';
    };
    reclaimer = new EndpointReclaimer(deps);
    reclaimer.add(stale('e'));
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(['controller started']);
    const claimed = reclaimer.claim('e', 'eth0').then(() => events.push('attach proceeds'));
    await vi.advanceTimersByTimeAsync(100);
    expect(events).toEqual(['controller started']);
    unblock();
    await claimed;
    expect(events).toEqual(['controller started', 'controller done', 'local e', 'attach proceeds']);
  });
});
