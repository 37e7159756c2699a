import type { NodeCore } from './node-core.js';

export interface PeerProberOptions {
  /** The peers to probe now (members other than this one). */
  peers(): readonly string[];
  /** One timed round trip to `id` in ms, or undefined when it failed (HttpTransport.probe). */
  probe(id: string): Promise<number | undefined>;
  /** Told each measured round trip. */
  observe(id: string, ms: number): void;
  /** Probes each peer every this many ms (on the core's ticks). */
  intervalMs: number;
  tickMs: number;
}

/**
 * Measures the round trip to each peer now and then, as etcd's prober does:
 * Raft's own traffic cannot tell a slow link from a slow follower. One probe
 * per peer at a time; it stops with the core's ticks.
 */
export function attachPeerProber(core: NodeCore, options: PeerProberOptions): void {
  const everyTicks = Math.max(1, Math.round(options.intervalMs / options.tickMs));
  const inFlight = new Set<string>();
  let ticks = 0;
  core.on('tick', () => {
    if (++ticks % everyTicks !== 0) return;
    for (const id of options.peers()) {
      if (inFlight.has(id)) continue;
      inFlight.add(id);
      void options.probe(id).then((ms) => {
        inFlight.delete(id);
        if (ms !== undefined) options.observe(id, ms);
      });
    }
  });
}
