/**
 * Waits for a monotonically increasing number (applied index, store revision)
 * to reach a target. Waiters are kept sorted by target so that advance() only
 * touches the ones it releases.
 */
export class IndexWaiter {
  private current: number;
  private waiters: { target: number; resolve: () => void }[] = [];

  constructor(initial: number) {
    this.current = initial;
  }

  get value(): number {
    return this.current;
  }

  waitFor(target: number): Promise<void> {
    if (target <= this.current) return Promise.resolve();
    return new Promise((resolve) => {
      // Insert keeping ascending order; waits usually target the near future, so scan from the end.
      let i = this.waiters.length;
      while (i > 0 && this.waiters[i - 1]!.target > target) i--;
      this.waiters.splice(i, 0, { target, resolve });
    });
  }

  advance(to: number): void {
    if (to <= this.current) return;
    this.current = to;
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.target <= to) n++;
    if (n === 0) return;
    const released = this.waiters.splice(0, n);
    for (const w of released) w.resolve();
  }

  /** Drops waiters (they are abandoned by their requests' timeouts anyway). */
  clear(): void {
    this.waiters = [];
  }
}
