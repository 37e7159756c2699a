import { assert } from './errors.js';
import type { Entry, Snapshot } from './messages.js';

/**
 * Entries and a snapshot not yet on stable storage. Invariant: entries[i] has
 * index offset + i; if a snapshot is pending, offset = snapshot index + 1.
 *
 * Some of them may already be on their way to the disk (handed out in a Ready
 * whose write has not finished): entries below `offsetInProgress`, and the
 * snapshot when `snapshotInProgress`. They stay here, readable, until the
 * write reports back (stableTo), and are not handed out again.
 */
export class UnstableLog {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  offset: number;
  /** Entries from here on have not been handed to storage yet. */
  offsetInProgress: number;
  snapshotInProgress = false;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** The entries not yet handed to storage. */
  entriesToPersist(): Entry[] {
    const from = this.offsetInProgress - this.offset;
    return from === 0 ? this.entries : this.entries.slice(from);
  }

  /** The snapshot if it was not handed to storage yet. */
  snapshotToPersist(): Snapshot | undefined {
    return this.snapshotInProgress ? undefined : this.snapshot;
  }

  /**
   * A Ready handing entries up to (index, term) to storage was accepted. Entries
   * that arrived after that Ready was collected are not covered; if the log was
   * cut below (index, term) meanwhile, neither are the entries that replaced it.
   */
  entriesInProgressTo(index: number, term: number): void {
    if (index < this.offsetInProgress || this.maybeTerm(index) !== term) return;
    this.offsetInProgress = index + 1;
  }

  /** A Ready handing `snapshot` to storage was accepted. */
  snapshotInProgressIs(snapshot: Snapshot): void {
    if (this.snapshot === snapshot) this.snapshotInProgress = true;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot?.metadata.index;
  }

  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === index)
        return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || index > last) return undefined;
    return this.entries[index - this.offset]!.term;
  }

  /** The entries up to (index, term) reached stable storage; ignored if they were replaced meanwhile. */
  stableTo(index: number, term: number): void {
    const t = this.maybeTerm(index);
    if (t === undefined || t !== term || index < this.offset) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
    if (this.offsetInProgress < this.offset) this.offsetInProgress = this.offset;
  }

  stableSnapTo(index: number): void {
    if (this.snapshot && this.snapshot.metadata.index === index) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = snapshot;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const first = ents[0]!.index;
    if (first === this.offset + this.entries.length) {
      this.entries.push(...ents);
    } else if (first <= this.offset) {
      // Replaces everything unstable; storage truncates its own conflicting suffix when these are persisted.
      this.offset = first;
      this.offsetInProgress = first;
      this.entries = [...ents];
    } else {
      this.entries = this.slice(this.offset, first).concat(ents);
      // The replaced entries may be on their way to disk: the new ones go after them,
      // and storage truncates the old ones then (writes run in call order).
      if (this.offsetInProgress > first) this.offsetInProgress = first;
    }
  }

  slice(lo: number, hi: number): Entry[] {
    assert(
      lo <= hi && lo >= this.offset && hi <= this.offset + this.entries.length,
      `unstable.slice(${lo}, ${hi}) out of bounds`,
    );
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
