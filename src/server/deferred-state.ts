import type { KvStateMachine } from '../kv/state-machine.js';
import type { ConfState, HardState } from '../raft/index.js';
import type { AppliedWrite, PersistableReady } from '../storage/index.js';

/**
 * What a node writes only with its next log write: a hard state whose commit
 * index alone moved, and the state machine's applied state. Neither needs to
 * be durable at once (a restart learns the commit from the leader and replays
 * the log from the last applied state written), and each LevelDB write of its
 * own costs a thread-pool wake-up. The exception, a membership change, is the
 * core's: it asks for `commitToSync()` before applying one.
 */
export class DeferredState {
  /** The newest commit-only hard state not yet written. */
  private hardState: HardState | undefined;
  /** The newest hard state handed to the disk, synced or not. */
  private handedOut: HardState | undefined;
  /** Entries were applied since the applied state was last taken. */
  private appliedSinceTaken = false;
  /** A membership applied since then, to write with it. */
  private confState: ConfState | undefined;

  commitMoved(hardState: HardState): void {
    this.hardState = hardState;
  }

  entriesApplied(confState: ConfState | undefined): void {
    this.appliedSinceTaken = true;
    if (confState) this.confState = confState;
  }

  /** `rd`, carrying the deferred hard state if it has none of its own (its own is newer). */
  withHardState<R extends PersistableReady>(rd: R): R {
    const deferred = this.hardState;
    this.hardState = undefined;
    const out = rd.hardState || !deferred ? rd : { ...rd, hardState: deferred };
    if (out.hardState) this.handedOut = out.hardState;
    return out;
  }

  /**
   * A write that, synced, puts the newest commit index this node handed out on
   * disk: the deferred hard state, or the last one written again (a synced
   * write makes every earlier one durable, and rewriting the newest changes
   * nothing). Undefined when no hard state was ever handed out.
   */
  commitToSync(): PersistableReady | undefined {
    const rd = this.withHardState<PersistableReady>({ entries: [] });
    if (rd.hardState) return rd;
    return this.handedOut ? { entries: [], hardState: this.handedOut } : undefined;
  }

  /** The applied state of `kv` if it moved, taken: the caller writes it. */
  takeApplied(kv: KvStateMachine): { applied?: AppliedWrite } {
    if (!this.appliedSinceTaken) return {};
    this.appliedSinceTaken = false;
    const confState = this.confState;
    this.confState = undefined;
    return {
      applied: { appliedIndex: kv.appliedIndex, confState, kvMutations: kv.takeMutations() },
    };
  }

  /** Everything deferred, taken, as a write with no entries; undefined when nothing is. */
  takeAll(
    kv: KvStateMachine,
  ): { ready: PersistableReady; applied: { applied?: AppliedWrite } } | undefined {
    const ready = this.withHardState<PersistableReady>({ entries: [] });
    const applied = this.takeApplied(kv);
    if (!ready.hardState && !applied.applied) return undefined;
    return { ready, applied };
  }
}
