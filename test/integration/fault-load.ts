/**
 * The client load of the fault tests (partition.test.ts, crash.test.ts):
 * concurrent clients reading, writing and compare-and-swapping a few hot keys
 * through random nodes, and writing keys of their own, with every outcome
 * recorded for the linearizability check and the lost-write checks.
 *
 * A fault phase is measured by work done, not by time: `untilWork()` keeps the
 * fault on until the phase has its acknowledged writes and answered reads, and
 * fails the test when the bounded time runs out first.
 */
import type { Test } from 'tap';
import {
  type CheckResult,
  checkLinearizable,
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  kvModel,
} from '../support/linearizability.js';
import { casTxn, getKey, type Outcome, putKey, sleep } from './http-ops.js';

export interface Write {
  key: string;
  value: string;
  result: 'acked' | 'unknown' | 'failed';
  /** The revision the write was acknowledged at. */
  revision?: number;
}

export interface LoadOptions {
  /** The client URL of node i (i < nodeCount). */
  url: (i: number) => string;
  nodeCount: number;
  random: () => number;
  clients: number;
  /** Keys every client reads, puts and compare-and-swaps. */
  hotKeys: readonly string[];
  /** Each client also puts fresh keys `${ownPrefix}c<client>-<n>`: the data the nodes must agree on. */
  ownPrefix: string;
  /** Hard cap on operations per client while started, whatever the timing. */
  opsPerClientMax: number;
}

/** Work done so far; each counter only grows. */
export interface Work {
  ackedWrites: number;
  /** Reads that observed a value (or the key's absence). */
  reads: number;
}

/** The value a get outcome observed: a string, null for key_not_found, undefined if it observed nothing. */
function observedValue(r: Outcome): string | null | undefined {
  if (r.kind === 'ok' && r.status === 200) return r.body.kv!.value;
  if (r.kind === 'failed' && r.status === 404 && r.body?.error?.code === 'key_not_found')
    return null;
  return undefined;
}

export class KvLoad {
  readonly recorder = new HistoryRecorder<KvInput, KvOutput>();
  readonly writes: Write[] = [];
  readonly counts = { get: 0, put: 0, cas: 0, own: 0, failed: 0, unknown: 0 };
  /** How each kind of request was answered, e.g. "put 504 timeout": for the log. */
  readonly answers = new Map<string, number>();
  private readonly work: Work = { ackedWrites: 0, reads: 0 };
  private running = false;
  private loops: Promise<void>[] = [];
  /** Across restarts of the load, so values stay unique. */
  private readonly next: number[];

  constructor(private readonly o: LoadOptions) {
    this.next = Array.from({ length: o.clients }, () => 0);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loops = Array.from({ length: this.o.clients }, (_, id) => this.client(id));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  done(): Work {
    return { ...this.work };
  }

  acked(): Write[] {
    return this.writes.filter((w) => w.result === 'acked');
  }

  /**
   * Waits until `need` more work than at `since` is done, or `timeoutMs` passes;
   * records one assertion either way. Returns the work the phase did.
   */
  async untilWork(
    t: Test,
    phase: string,
    since: Work,
    need: Work,
    timeoutMs: number,
  ): Promise<Work> {
    const started = Date.now();
    const doneSince = (): Work => ({
      ackedWrites: this.work.ackedWrites - since.ackedWrites,
      reads: this.work.reads - since.reads,
    });
    for (let i = 0; i < 10_000 && Date.now() - started < timeoutMs; i++) {
      const d = doneSince();
      if (d.ackedWrites >= need.ackedWrites && d.reads >= need.reads) break;
      if (!this.running) break;
      await sleep(20);
    }
    const d = doneSince();
    t.ok(
      d.ackedWrites >= need.ackedWrites && d.reads >= need.reads,
      `${phase}: ${d.ackedWrites} writes acknowledged and ${d.reads} reads answered ` +
        `(at least ${need.ackedWrites} and ${need.reads}) in ${Date.now() - started} ms`,
    );
    return d;
  }

  summary(): string {
    const c = this.counts;
    return (
      `${c.get} gets, ${c.put} puts, ${c.cas} CAS, ${c.own} puts of fresh keys; ` +
      `${this.work.ackedWrites} writes acknowledged, ${this.work.reads} reads answered, ` +
      `${c.failed} definitely failed, ${c.unknown} unknown outcomes; answers: ` +
      [...this.answers].map(([k, n]) => `${k}: ${n}`).join(', ')
    );
  }

  private tally(op: string, r: Outcome): void {
    const code = r.kind === 'ok' ? '' : r.detail;
    const label = `${op} ${r.kind === 'ok' ? r.status : code.split(' ').slice(0, 2).join(' ')}`;
    this.answers.set(label, (this.answers.get(label) ?? 0) + 1);
  }

  private async client(id: number): Promise<void> {
    const { random, hotKeys } = this.o;
    // The last value this client saw per key: CAS expects it, so some CAS succeed.
    const seen = new Map<string, string | null>();
    // A dead or cut-off node answers at once: back off (10 ms doubling to 160 ms) while
    // requests fail, so a downed cluster is not flooded while it restarts.
    let failures = 0;
    const backOff = async (answered: boolean) => {
      failures = answered ? 0 : failures + 1;
      if (!answered) await sleep(10 * 2 ** Math.min(failures - 1, 4));
    };
    for (let ops = 0; this.running && ops < this.o.opsPerClientMax; ops++) {
      const n = this.next[id]!++;
      const url = this.o.url(Math.floor(random() * this.o.nodeCount));
      const dice = random();
      if (dice < 0.35) {
        const key = hotKeys[Math.floor(random() * hotKeys.length)]!;
        this.counts.get++;
        const finish = this.recorder.begin(id, { op: 'get', key });
        const r = await getKey(url, key);
        this.tally('get', r);
        const value = observedValue(r);
        if (value !== undefined) {
          finish({ op: 'get', value });
          seen.set(key, value);
          this.work.reads++;
        } else if (r.kind === 'failed') finish.fail();
        else finish();
        if (value === undefined) this.counts[r.kind === 'failed' ? 'failed' : 'unknown']++;
        await backOff(value !== undefined);
        continue;
      }
      const own = dice >= 0.8;
      const key = own
        ? `${this.o.ownPrefix}c${id}-${n}`
        : hotKeys[Math.floor(random() * hotKeys.length)]!;
      const value = `c${id}-${n}`;
      const write: Write = { key, value, result: 'unknown' };
      this.writes.push(write);
      let r: Outcome;
      let ok: boolean | undefined;
      const kind = own ? 'own' : dice < 0.6 ? 'put' : 'cas';
      if (kind !== 'cas') {
        this.counts[kind]++;
        const finish = this.recorder.begin(id, { op: 'put', key, value });
        r = await putKey(url, key, value);
        ok = r.kind === 'ok' ? true : undefined;
        if (ok) {
          if (
            r.kind === 'ok' &&
            (r.body.kv?.value !== value || r.body.kv?.modRevision !== r.body.revision)
          )
            throw new Error(`a put answered ${JSON.stringify(r.body)} for ${key}=${value}`);
          finish({ op: 'put' });
        } else if (r.kind === 'failed') finish.fail();
        else finish();
      } else {
        this.counts.cas++;
        const expected = seen.get(key) ?? null;
        const finish = this.recorder.begin(id, { op: 'cas', key, expected, value });
        // Half as PUT with prevValue, half as a txn with a value compare.
        if (expected !== null && random() < 0.5) {
          r = await putKey(url, key, value, { prevValue: expected });
          if (r.kind === 'ok') ok = r.status === 200;
        } else {
          r = await casTxn(url, key, expected, value);
          if (r.kind === 'ok') ok = r.body.succeeded === true;
        }
        if (ok !== undefined) finish({ op: 'cas', ok });
        else if (r.kind === 'failed') finish.fail();
        else finish();
      }
      this.tally(kind, r);
      if (ok === true) {
        write.result = 'acked';
        write.revision = r.kind === 'ok' ? r.body.revision : undefined;
        seen.set(key, value);
        this.work.ackedWrites++;
      } else if (ok === false) {
        write.result = 'failed'; // the guard was false: nothing was written
      } else if (r.kind === 'failed') {
        write.result = 'failed';
        this.counts.failed++;
      } else this.counts.unknown++;
      await backOff(ok !== undefined);
    }
  }
}

/** Budget of the first check, and of the retry when the first one gives up. */
const CHECK_STEPS = [5_000_000, 50_000_000];

/**
 * The load's whole history must be linearizable. A checker that gives up is
 * retried with a ten times larger budget; if it gives up again the history is
 * not known to be linearizable, and that fails the test (it is never a pass).
 */
export function assertLinearizable(t: Test, load: KvLoad, what: string): CheckResult {
  const history = load.recorder.operations();
  const started = Date.now();
  let result: CheckResult = { outcome: 'unknown', partition: '', reason: 'not checked' };
  for (const maxSteps of CHECK_STEPS) {
    result = checkLinearizable(kvModel, history, { maxSteps });
    if (result.outcome !== 'unknown') break;
    t.comment(`${what}: checker gave up with ${maxSteps} steps: ${result.reason}`);
  }
  const pending = history.filter((op) => op.ret === undefined).length;
  t.comment(
    `${what}: ${history.length} operations (${pending} with unknown outcome), ` +
      `${result.outcome} in ${Date.now() - started} ms`,
  );
  t.equal(
    result.outcome,
    'ok',
    result.outcome === 'illegal'
      ? `${what}: not linearizable: ${result.info}`
      : result.outcome === 'unknown'
        ? `${what}: linearizability unknown (a give-up is not a pass): ${result.reason}`
        : `${what}: linearizable`,
  );
  return result;
}
