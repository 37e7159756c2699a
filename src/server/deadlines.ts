/**
 * Request deadlines without a timer per request (DESIGN.md: none on the hot
 * path). Signals expiring in the same slot share one bucket, and a single
 * interval, armed only while some deadline is pending, aborts the buckets
 * whose slot has passed. Deadlines fire up to one slot late, never early.
 */
export class Deadlines {
  private readonly buckets = new Map<number, AbortController[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly slotMs = 25) {}

  /** A signal that aborts with a TimeoutError once `ms` have passed. */
  after(ms: number): AbortSignal {
    const controller = new AbortController();
    const slot = Math.ceil((Date.now() + ms) / this.slotMs);
    const bucket = this.buckets.get(slot);
    if (bucket) bucket.push(controller);
    else this.buckets.set(slot, [controller]);
    if (!this.timer) {
      this.timer = setInterval(() => this.expire(), this.slotMs);
      this.timer.unref();
    }
    return controller.signal;
  }

  private expire(): void {
    const now = Date.now() / this.slotMs;
    for (const [slot, bucket] of this.buckets) {
      if (slot > now) continue;
      this.buckets.delete(slot);
      const reason = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
      for (const controller of bucket) controller.abort(reason);
    }
    if (this.buckets.size === 0) this.close();
  }

  /** Stops the timer; pending deadlines never fire. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.buckets.clear();
  }
}
