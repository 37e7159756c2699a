import { setMaxListeners } from 'node:events';

/**
 * Request deadlines without a timer or an AbortController per request
 * (DESIGN.md: none on the hot path). Requests whose deadline falls in the same
 * slot share one AbortSignal, and a single interval, armed only while some
 * deadline is pending, aborts the slots that have passed. Deadlines fire up to
 * one slot late, never early.
 *
 * A shared signal is only ever aborted, never reused for another deadline, so
 * sharing is invisible to a caller — provided callers remove their abort
 * listeners once their request is over (a listener left behind is kept until
 * its slot expires, and then called).
 */
export class Deadlines {
  private readonly slots = new Map<number, AbortController>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly slotMs = 25) {}

  /** A signal that aborts with a TimeoutError once `ms` have passed. */
  after(ms: number): AbortSignal {
    const slot = Math.ceil((Date.now() + ms) / this.slotMs);
    let controller = this.slots.get(slot);
    if (!controller) {
      controller = new AbortController();
      // Every request of the slot may listen at once: no "possible leak" warning.
      setMaxListeners(0, controller.signal);
      this.slots.set(slot, controller);
      if (!this.timer) {
        this.timer = setInterval(() => this.expire(), this.slotMs);
        this.timer.unref();
      }
    }
    return controller.signal;
  }

  private expire(): void {
    const now = Date.now() / this.slotMs;
    for (const [slot, controller] of this.slots) {
      if (slot > now) continue;
      this.slots.delete(slot);
      controller.abort(
        new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
      );
    }
    if (this.slots.size === 0) this.close();
  }

  /**
   * Fires every pending deadline now (the node stops: whatever still waits on one
   * ends, rather than wait for a timer that will not run), then stops the timer.
   */
  abortAll(): void {
    const slots = [...this.slots.values()];
    this.close();
    for (const controller of slots)
      controller.abort(new DOMException('The node is stopping', 'TimeoutError'));
  }

  /** Stops the timer; pending deadlines never fire. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.slots.clear();
  }
}
