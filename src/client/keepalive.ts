import { setTimeout as sleep } from 'node:timers/promises';
import { isRaftkvError, RaftkvError } from './errors.js';
import { encodeKey } from './paths.js';
import type { Transport } from './transport.js';
import type { KeepLeaseAliveOptions, LeaseKeepAliveResponse, LeaseKeeper } from './types.js';

/** Retry pause after a failed renewal: short, never past the deadline. */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 1_000;

/**
 * Renews lease `id` at once and then every ttl/3. A failed renewal is retried
 * (after a short pause) until the lease's deadline: ttl after the sending of
 * the last acknowledged renewal (the send time, so the estimate errs towards
 * "lost" rather than towards "alive"). The lease is reported lost, once and
 * at once, when a renewal answers lease_not_found or the deadline passes;
 * renewing then stops. Timers are unref'd, so a keeper alone does not keep
 * the process alive.
 */
export function keepLeaseAlive(
  transport: Transport,
  id: string,
  options: KeepLeaseAliveOptions,
): LeaseKeeper {
  const { ttlSeconds, onLost } = options;
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0)
    throw new RaftkvError('invalid_request', 'ttlSeconds must be a positive number');
  const controller = new AbortController();
  const stopSignal = controller.signal;
  let resolveLost!: (err: RaftkvError) => void;
  const lost = new Promise<RaftkvError>((resolve) => {
    resolveLost = resolve;
  });
  const path = `/v1/leases/${encodeKey(id)}/keepalive`;

  const lose = (err: RaftkvError): void => {
    if (stopSignal.aborted) return;
    controller.abort();
    resolveLost(err);
    try {
      onLost?.(err);
    } catch {
      // The user's callback must not break the keeper.
    }
  };

  const loop = async (): Promise<void> => {
    let ttlMs = ttlSeconds * 1000;
    let deadline = Date.now() + ttlMs;
    let delay = 0;
    let lastError: unknown;
    while (!stopSignal.aborted) {
      if (delay > 0) {
        const wait = Math.min(delay, deadline - Date.now());
        if (wait > 0)
          await sleep(wait, undefined, { signal: stopSignal, ref: false }).catch(() => {});
        if (stopSignal.aborted) return;
      }
      const sent = Date.now();
      const left = deadline - sent;
      if (left <= 0) {
        lose(
          new RaftkvError(
            'lease_expired',
            `lease ${id} could not be renewed within its TTL (${ttlMs / 1000} s)` +
              (lastError instanceof Error ? `: ${lastError.message}` : ''),
            { cause: lastError },
          ),
        );
        return;
      }
      try {
        const res = await transport.call<LeaseKeepAliveResponse>({
          method: 'POST',
          path,
          idempotencyKey: transport.newKey(),
          signal: AbortSignal.any([stopSignal, AbortSignal.timeout(left)]),
          timeoutMs: Math.min(transport.options.timeoutMs, left),
        });
        if (stopSignal.aborted) return;
        if (typeof res.body?.ttl === 'number' && res.body.ttl > 0) ttlMs = res.body.ttl * 1000;
        deadline = sent + ttlMs;
        delay = ttlMs / 3;
        lastError = undefined;
      } catch (err) {
        if (stopSignal.aborted) return;
        if (isRaftkvError(err, 'lease_not_found')) {
          lose(err);
          return;
        }
        lastError = err;
        delay = Math.max(
          RETRY_MIN_MS,
          Math.min(RETRY_MAX_MS, ttlMs / 10, (deadline - Date.now()) / 4),
        );
      }
    }
  };

  const running = loop().catch((err: unknown) => {
    // Not expected; never leave a rejection unhandled.
    lose(
      err instanceof RaftkvError
        ? err
        : new RaftkvError('internal', `keepalive of lease ${id}: ${String(err)}`, { cause: err }),
    );
  });

  return {
    lost,
    async stop() {
      controller.abort();
      await running;
    },
  };
}
