/**
 * An instance's membership in the bank: a lease it keeps alive (its
 * "session") and its registry name, svc/tsbank/<instance>, owned by that
 * lease. While the instance runs and reaches raftkv, its name is listed; when
 * it dies, freezes or is cut off, the lease runs out and the name disappears
 * with it — nobody has to clean up after a crashed instance.
 *
 * The same lease owns the instance's candidacy in the interest election and,
 * while it leads, the interest lock (interest.ts): one lease, one fate.
 *
 * A lost session is replaced: a new lease, the name registered again. A
 * restarted instance may find its name still held by its previous
 * incarnation's lease (killed less than a TTL ago); it waits for that lease
 * to run out.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { INSTANCES_PREFIX, instanceName } from './keys.js';
import { type Client, isRaftkvError, type LeaseKeeper } from './raftkv.js';

export interface Session {
  readonly lease: string;
  /** False from the moment the keeper knows the lease is gone. */
  readonly alive: boolean;
  /** Resolves when the lease is lost (never rejects). */
  readonly lost: Promise<unknown>;
}

export interface InstanceInfo {
  instance: string;
  url: string;
  pid: number;
}

export interface MembershipOptions {
  instance: string;
  url: string;
  ttlSeconds: number;
  log: Logger;
}

const RETRY_MS = 250;

export class Membership {
  private current: (Session & { keeper: LeaseKeeper }) | undefined;
  private readonly stopping = new AbortController();
  private readonly waiters = new Set<() => void>();
  private running: Promise<void> | undefined;

  constructor(
    private readonly client: Client,
    private readonly options: MembershipOptions,
  ) {}

  start(): void {
    this.running ??= this.run();
  }

  /** The live session, once there is one; rejects when `signal` aborts or membership stops. */
  async session(signal: AbortSignal): Promise<Session> {
    for (;;) {
      const current = this.current;
      if (current?.alive) return current;
      if (signal.aborted || this.stopping.signal.aborted) throw new Error('membership stopped');
      await new Promise<void>((resolve) => {
        const done = () => {
          this.waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.waiters.add(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** The instances registered now (this one included while its session lives). */
  async peers(): Promise<{ instances: InstanceInfo[]; revision: number }> {
    const { entries, revision } = await this.client.registry(INSTANCES_PREFIX);
    const instances = entries.map((e) => JSON.parse(e.value) as InstanceInfo);
    return { instances, revision };
  }

  /** Stops renewing and revokes the lease: the name, candidacy and lock go at once. */
  async stop(): Promise<void> {
    this.stopping.abort();
    for (const wake of [...this.waiters]) wake();
    await this.running;
    const last = this.current;
    this.current = undefined;
    if (!last) return;
    await last.keeper.stop();
    await this.client.revokeLease(last.lease).catch(() => {});
  }

  private async run(): Promise<void> {
    const { log } = this.options;
    const stopped = this.stopping.signal;
    while (!stopped.aborted) {
      let session: Session & { keeper: LeaseKeeper };
      try {
        session = await this.open();
      } catch (err) {
        if (stopped.aborted) return;
        log.warn({ err: String(err) }, 'could not join the bank yet; retrying');
        await sleep(RETRY_MS, undefined, { signal: stopped }).catch(() => {});
        continue;
      }
      this.current = session;
      for (const wake of [...this.waiters]) wake();
      log.info({ lease: session.lease }, 'registered in the bank');
      const ended = await Promise.race([
        session.lost.then(() => 'lost' as const),
        new Promise<'stopped'>((resolve) =>
          stopped.addEventListener('abort', () => resolve('stopped'), { once: true }),
        ),
      ]);
      if (ended === 'stopped') return;
      this.current = undefined;
      await session.keeper.stop();
      log.warn({ lease: session.lease }, 'session lease lost; registering again');
    }
  }

  /** A new lease, kept alive, owning this instance's registry name. */
  private async open(): Promise<Session & { keeper: LeaseKeeper }> {
    const { instance, url, ttlSeconds } = this.options;
    const { id: lease, ttl } = await this.client.grantLease(ttlSeconds);
    let alive = true;
    const keeper = this.client.keepLeaseAlive(lease, {
      ttlSeconds: ttl,
      onLost: () => {
        alive = false;
      },
    });
    const info: InstanceInfo = { instance, url, pid: process.pid };
    // A name held by a dead incarnation frees itself within one TTL; give it two.
    const deadline = Date.now() + 2 * ttl * 1000;
    for (;;) {
      try {
        await this.client.register(instanceName(instance), JSON.stringify(info), lease);
        break;
      } catch (err) {
        if (!isRaftkvError(err, 'name_taken') || Date.now() > deadline || !alive) {
          await keeper.stop();
          await this.client.revokeLease(lease).catch(() => {});
          throw err;
        }
        await sleep(RETRY_MS);
      }
    }
    return {
      lease,
      keeper,
      get alive() {
        return alive;
      },
      lost: keeper.lost,
    };
  }
}
