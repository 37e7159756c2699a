/**
 * Small HTTP helpers for the coordination fault tests: bounded requests, a
 * lease keep-alive loop that can be paused (a holder stopped past its TTL),
 * and retries that ride out leader changes.
 */
import type { TestCluster } from '../integration/helpers.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Reply {
  /** 0 when no HTTP answer arrived in time. */
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies
  body: any;
}

/** One bounded request; never throws. */
export async function req(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 5_000,
  headers: Record<string, string> = {},
): Promise<Reply> {
  try {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  } catch (err) {
    return { status: 0, body: { error: String(err) } };
  }
}

/** Nodes that are running. */
export const liveNodes = (c: TestCluster) =>
  c.nodes.flatMap((n, i) => (n === undefined ? [] : [i]));

/** Retries while the cluster has no answer for us (no HTTP reply, 5xx, unavailable): at most `timeoutMs`. */
export async function retrying(
  what: string,
  urls: () => string[],
  attempt: (url: string) => Promise<Reply>,
  timeoutMs = 15_000,
): Promise<Reply> {
  const deadline = Date.now() + timeoutMs;
  let last: Reply = { status: 0, body: undefined };
  for (let i = 0; Date.now() < deadline; i++) {
    const candidates = urls();
    last = await attempt(candidates[i % candidates.length]!);
    if (last.status !== 0 && last.status < 500) return last;
    await sleep(100);
  }
  throw new Error(`${what}: no answer in ${timeoutMs} ms (last ${JSON.stringify(last)})`);
}

export async function grantLease(c: TestCluster, ttl: number): Promise<string> {
  const r = await retrying(
    'grant',
    () => liveNodes(c).map((i) => c.url(i)),
    (u) => req(u, 'POST', '/v1/leases', { ttl }),
  );
  if (r.status !== 201) throw new Error(`grant: ${JSON.stringify(r)}`);
  return r.body.id as string;
}

/** The current revision, from a linearizable read. */
export async function currentRevision(c: TestCluster): Promise<number> {
  const r = await retrying(
    'revision',
    () => liveNodes(c).map((i) => c.url(i)),
    (u) => req(u, 'GET', '/v1/kv/no-such-key'),
  );
  return r.body.revision as number;
}

/**
 * Keeps a lease alive every `everyMs` through the live nodes in turn, as a
 * client library would (renewing at about TTL/4 and retrying on errors).
 * pause() stops it at once, like a SIGSTOP'd process; `lost` is set when the
 * server answers lease_not_found.
 */
export class KeepAlive {
  lost = false;
  renewals = 0;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly c: TestCluster,
    readonly lease: string,
    private readonly everyMs = 250,
    /** Nodes not to use (e.g. an isolated one). */
    private readonly avoid: () => number[] = () => [],
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      const nodes = liveNodes(this.c).filter((n) => !this.avoid().includes(n));
      const node = nodes[i % Math.max(1, nodes.length)];
      if (node !== undefined) {
        const r = await req(
          this.c.url(node),
          'POST',
          `/v1/leases/${encodeURIComponent(this.lease)}/keepalive`,
          undefined,
          1_000,
        );
        if (this.stopped) return;
        if (r.status === 200) this.renewals++;
        else if (r.status === 404) {
          this.lost = true;
          return;
        }
      }
      await sleep(r0(this.everyMs, i));
    }
  }

  async pause(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** A little spread in the renewal period, deterministic. */
const r0 = (every: number, i: number) => every - (i % 3) * 20;
