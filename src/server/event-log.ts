/**
 * What happened to a member, as log lines an operator can act on: the node
 * (node.ts) calls one method per event at the point it happens, and this
 * module turns it into one structured line with names next to ids.
 *
 * Every line here has an `event` field with a stable name (what to grep and
 * alert on) and a message that reads on its own:
 *   leader_elected, leader_lost, member_added, member_promoted, member_removed,
 *   snapshot_taken, snapshot_sent, snapshot_send_failed, snapshot_installed,
 *   mvcc_compacted, slow_disk_sync, slow_apply, peer_unreachable,
 *   peer_reachable (peer-reachability.ts), serving and stopping (logStop).
 *
 * Why a leader was lost is inferred from what this member saw, in this order:
 * 1. transfer: this member (as leader) started a transfer that the Raft core
 *    has not abandoned, or was told to take over (TimeoutNow), or saw a vote
 *    request marked as a transfer for a term newer than the lost leader's;
 * 2. as leader: `removed` (no longer a voter), `check_quorum` (same term: it
 *    heard from no majority for an election timeout, so it stepped down), or
 *    `higher_term` (a newer term appeared: it had been cut off or was slow);
 * 3. as follower: `timeout` (it heard nothing from the leader for an election
 *    timeout and started an election: the leader is down or cut off from it),
 *    `new_leader` (a leader of a newer term spoke first), `higher_term`
 *    (another member started an election), else `unknown`.
 */
import type { Logger } from 'pino';
import type { CompactionReport } from '../kv/state-machine.js';
import type { ConfChange, ConfState, Entry, Message } from '../raft/index.js';
import { entriesSizeBytes, NONE } from '../raft/index.js';
import type { Member } from './members.js';
import { PeerReachabilityLog } from './peer-reachability.js';

export interface EventLogOptions {
  log: Logger;
  selfId: string;
  /** A member's name from the member table; undefined if the table does not know it. */
  nameOf: (id: string) => string | undefined;
  /** The voters now (after the changes applied so far). */
  voters: () => readonly string[];
  /** Whether the Raft core leads with no leadership transfer under way (one was abandoned or refused). */
  leadingWithoutTransfer: () => boolean;
  electionTimeoutMs: number;
  /** A persisted Ready slower than this is logged (slow_disk_sync). Default 100 ms. */
  slowDiskSyncMs?: number;
  /** An applied batch slower than this is logged (slow_apply). Default 100 ms. */
  slowApplyMs?: number;
  /** At most one line per peer (reachability) and per kind of slow operation in this long. Default 10 s. */
  minLineIntervalMs?: number;
  now?: () => number;
}

/** Defaults of EventLogOptions. */
export const SLOW_DISK_SYNC_MS = 100;
export const SLOW_APPLY_MS = 100;
export const MIN_LINE_INTERVAL_MS = 10_000;

export class NodeEventLog {
  readonly peers: PeerReachabilityLog;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly slowDiskSync: SlowOperationLog;
  private readonly slowApply: SlowOperationLog;
  private lead: string = NONE;
  private role = 'follower';
  private term = 0;
  /** Since when this member has known no leader (its start, at first). */
  private leaderlessSinceMs: number;
  private everHadLeader = false;
  /**
   * A transfer this member started as leader, or learned of as follower: it
   * explains the loss of a leader whose term is below `beforeTerm`.
   */
  private transfer:
    | { to: string; beforeTerm: number; atMs: number; byThisLeader?: true }
    | undefined;
  /** The compact revision of the last mvcc_compacted line. */
  private compactedToRevision = 0;
  /** Snapshots being sent, by follower id. */
  private readonly sending = new Map<
    string,
    { index: number; sizeBytes: number; startMs: number }
  >();

  constructor(private readonly opts: EventLogOptions) {
    this.log = opts.log;
    this.now = opts.now ?? (() => performance.now());
    this.leaderlessSinceMs = this.now();
    const intervalMs = opts.minLineIntervalMs ?? MIN_LINE_INTERVAL_MS;
    this.peers = new PeerReachabilityLog({
      log: opts.log,
      nameOf: opts.nameOf,
      now: this.now,
      minIntervalMs: intervalMs,
      startupGraceMs: 2 * opts.electionTimeoutMs,
    });
    this.slowDiskSync = new SlowOperationLog(
      opts.log,
      this.now,
      opts.slowDiskSyncMs ?? SLOW_DISK_SYNC_MS,
      intervalMs,
      'slow_disk_sync',
      'persisting Raft state (a synced LevelDB write)',
    );
    this.slowApply = new SlowOperationLog(
      opts.log,
      this.now,
      opts.slowApplyMs ?? SLOW_APPLY_MS,
      intervalMs,
      'slow_apply',
      'applying committed entries to the state machine',
    );
  }

  private name(id: string): string {
    return this.opts.nameOf(id) ?? id;
  }

  /** Every tick: held lines whose interval has ended go out. */
  tick(): void {
    // The Raft core abandoned this member's transfer (not won within an election timeout).
    if (this.transfer?.byThisLeader && this.opts.leadingWithoutTransfer())
      this.transfer = undefined;
    this.peers.tick();
    this.slowDiskSync.tick();
    this.slowApply.tick();
  }

  // ---------------------------------------------------------------- leadership

  /** This member, as leader, starts handing leadership to `to`. */
  transferStarted(to: string, term: number): void {
    this.transfer = { to, beforeTerm: term + 1, atMs: this.now(), byThisLeader: true };
  }

  /** Every message from a peer, before the Raft core steps it: notices transfers. */
  peerMessage(m: Message): void {
    if (m.type === 'timeoutNow')
      this.transfer = { to: this.opts.selfId, beforeTerm: m.term + 1, atMs: this.now() };
    else if (m.type === 'vote' && m.transfer)
      this.transfer = { to: m.from, beforeTerm: m.term, atMs: this.now() };
  }

  /** The Raft core's soft state changed (a Ready's softState). */
  softState(lead: string, role: string, term: number): void {
    const prev = { lead: this.lead, role: this.role, term: this.term };
    this.lead = lead;
    this.role = role;
    this.term = term;
    if (lead === prev.lead) return;
    const now = this.now();
    if (prev.lead !== NONE) {
      const why = this.lostReason(prev, lead);
      const name = this.name(prev.lead);
      this.log.warn(
        {
          event: 'leader_lost',
          leader: name,
          leaderId: prev.lead,
          term: prev.term,
          reason: why.reason,
          ...(prev.lead === this.opts.selfId ? { self: true } : {}),
        },
        `leader lost: ${prev.lead === this.opts.selfId ? `this member (${name})` : name} no longer leads term ${prev.term}: ${why.text}`,
      );
      this.leaderlessSinceMs = now;
    }
    this.transfer = undefined;
    if (lead === NONE) return;
    const leaderlessMs = Math.round(now - this.leaderlessSinceMs);
    const name = this.name(lead);
    const since = this.everHadLeader ? 'without a leader' : 'since this member started';
    this.everHadLeader = true;
    this.log.info(
      {
        event: 'leader_elected',
        leader: name,
        leaderId: lead,
        term,
        leaderlessMs,
        ...(lead === this.opts.selfId ? { self: true } : {}),
      },
      `leader elected: ${lead === this.opts.selfId ? `this member (${name})` : name} leads term ${term}, after ${leaderlessMs} ms ${since} (as seen from this member)`,
    );
  }

  private lostReason(
    prev: { lead: string; role: string; term: number },
    lead: string,
  ): { reason: string; text: string } {
    const self = this.opts.selfId;
    const transfer = this.transfer;
    // A transfer seen as follower is acted on at once; a generous bound keeps a stale one out.
    const recent =
      transfer &&
      (transfer.byThisLeader || this.now() - transfer.atMs <= 10 * this.opts.electionTimeoutMs);
    if (transfer && recent && prev.term < transfer.beforeTerm) {
      const to = transfer.to === self ? 'this member' : this.name(transfer.to);
      return { reason: 'transfer', text: `leadership is being transferred to ${to}` };
    }
    if (prev.lead === self) {
      if (!this.opts.voters().includes(self))
        return {
          reason: 'removed',
          text: 'this member was removed from the voters and stepped down',
        };
      if (this.term === prev.term)
        return {
          reason: 'check_quorum',
          text: 'it heard from no majority of the voters for an election timeout and stepped down (partitioned, or the others are down)',
        };
      return {
        reason: 'higher_term',
        text: `it stepped down on seeing term ${this.term}: others elected or are electing a new leader (this member was cut off or too slow)`,
      };
    }
    const old = this.name(prev.lead);
    if (this.role === 'preCandidate' || this.role === 'candidate')
      return {
        reason: 'timeout',
        text: `nothing heard from ${old} for an election timeout: it is down or cut off from this member; starting an election`,
      };
    if (lead !== NONE)
      return { reason: 'new_leader', text: `${this.name(lead)} leads a newer term (${this.term})` };
    if (this.term > prev.term)
      return {
        reason: 'higher_term',
        text: `another member started an election for term ${this.term} (it stopped hearing from ${old})`,
      };
    return { reason: 'unknown', text: 'no reason seen from this member' };
  }

  // ---------------------------------------------------------------- membership

  /**
   * A conf change entry is being applied: before the member table and the
   * conf state change (`before` is the member as the table knew it).
   */
  confChangeApplied(
    entry: Pick<Entry, 'index' | 'term'>,
    cc: ConfChange,
    before: Member | undefined,
    confState: ConfState,
  ): void {
    const by = { entryIndex: entry.index, entryTerm: entry.term };
    const id = cc.nodeId;
    if (cc.type === 'removeNode') {
      const name = before?.name ?? id;
      this.peers.forget(id);
      this.log.warn(
        {
          event: 'member_removed',
          name,
          id,
          ...by,
          ...(id === this.opts.selfId ? { self: true } : {}),
        },
        `member removed: ${id === this.opts.selfId ? `this member (${name})` : name} (id ${id}) by entry ${entry.index}`,
      );
      return;
    }
    const member = parseMember(cc.context) ?? before;
    const name = member?.name ?? id;
    const peerUrl = member?.peerUrls[0];
    if (cc.type === 'addNode' && confState.learners.includes(id)) {
      this.log.info(
        { event: 'member_promoted', name, id, ...by },
        `member promoted: ${name} (id ${id}) is now a voter, by entry ${entry.index}`,
      );
      return;
    }
    if (
      confState.voters.includes(id) ||
      (cc.type === 'addLearner' && confState.learners.includes(id))
    )
      return; // already in that role: nothing changes
    const role = cc.type === 'addLearner' ? 'learner' : 'voter';
    this.log.info(
      { event: 'member_added', name, id, role, ...(peerUrl ? { peerUrl } : {}), ...by },
      `member added: ${name} (id ${id}) as a ${role}${peerUrl ? ` at ${peerUrl}` : ''}, by entry ${entry.index}`,
    );
  }

  // ---------------------------------------------------------------- snapshots and compaction

  /** The log was compacted up to a snapshot of the state machine at `index`. */
  snapshotTaken(
    info: {
      index: number;
      term: number;
      logEntriesRemoved: number;
      firstIndex: number;
      ms: number;
    },
    dataDirBytes: () => Promise<number>,
  ): void {
    const line = (sizeBytes: number | undefined) =>
      this.log.info(
        {
          event: 'snapshot_taken',
          index: info.index,
          term: info.term,
          ...(sizeBytes !== undefined ? { dataDirBytes: sizeBytes } : {}),
          ms: Math.round(info.ms),
          logEntriesRemoved: info.logEntriesRemoved,
          firstIndex: info.firstIndex,
        },
        `snapshot taken at index ${info.index} in ${Math.round(info.ms)} ms` +
          (sizeBytes !== undefined ? ` (data dir ${sizeBytes} bytes)` : '') +
          `; log compacted: ${info.logEntriesRemoved} entries removed, it now starts at ${info.firstIndex}`,
      );
    dataDirBytes().then(line, () => line(undefined));
  }

  /** A snapshot message to `to` leaves (its data just encoded). */
  snapshotSending(to: string, index: number, sizeBytes: number): void {
    this.sending.set(to, { index, sizeBytes, startMs: this.now() });
  }

  /** The transport finished sending a snapshot to `to`. */
  snapshotSent(to: string, ok: boolean): void {
    const s = this.sending.get(to);
    this.sending.delete(to);
    if (!s) return;
    const ms = Math.round(this.now() - s.startMs);
    const fields = { to: this.name(to), toId: to, index: s.index, sizeBytes: s.sizeBytes, ms };
    if (ok)
      this.log.info(
        { event: 'snapshot_sent', ...fields },
        `snapshot sent to ${fields.to}: index ${s.index}, ${s.sizeBytes} bytes in ${ms} ms`,
      );
    else
      this.log.warn(
        { event: 'snapshot_send_failed', ...fields },
        `sending a snapshot to ${fields.to} failed after ${ms} ms (index ${s.index}, ${s.sizeBytes} bytes); Raft retries`,
      );
  }

  snapshotInstalled(info: { from: string; index: number; sizeBytes: number; ms: number }): void {
    const from = info.from === NONE ? 'the leader' : this.name(info.from);
    const ms = Math.round(info.ms);
    this.log.info(
      {
        event: 'snapshot_installed',
        ...(info.from !== NONE ? { from, fromId: info.from } : {}),
        index: info.index,
        sizeBytes: info.sizeBytes,
        ms,
      },
      `snapshot installed from ${from}: index ${info.index}, ${info.sizeBytes} bytes in ${ms} ms`,
    );
  }

  /** An MVCC compaction was applied (by the entry at `entryIndex`). */
  mvccCompacted(entryIndex: number, stats: CompactionReport): void {
    // A retried compact (Idempotency-Key) replays its result without compacting again.
    if (stats.toRevision <= this.compactedToRevision) return;
    this.compactedToRevision = stats.toRevision;
    this.log.info(
      { event: 'mvcc_compacted', entryIndex, ...stats },
      `MVCC history compacted to revision ${stats.toRevision} (from ${stats.fromRevision}): ` +
        `${stats.versionsRemoved} old versions and ${stats.keysRemoved} deleted keys removed`,
    );
  }

  // ---------------------------------------------------------------- slow operations

  /** A synced write of a Ready (its log entries, hard state and applied state) finished after `ms`. */
  diskSynced(ms: number, entries: readonly Entry[]): void {
    this.slowDiskSync.record(ms, () => ({
      entries: entries.length,
      entryBytes: entriesSizeBytes(entries),
    }));
  }

  /** A batch of `entries` committed entries was applied in `ms`. */
  applied(ms: number, entries: number): void {
    this.slowApply.record(ms, () => ({ entries }));
  }
}

/**
 * One kind of operation that should be fast: an occurrence over the
 * threshold is a line, at most one line per interval; the ones in between
 * are counted and told (how many, the slowest) when the interval ends.
 */
class SlowOperationLog {
  private lastLineMs = Number.NEGATIVE_INFINITY;
  private held = 0;
  private heldMaxMs = 0;

  constructor(
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly thresholdMs: number,
    private readonly intervalMs: number,
    private readonly event: string,
    private readonly what: string,
  ) {}

  /** `fields` is only called for a line (it may cost something). */
  record(ms: number, describeOperation: () => Record<string, number>): void {
    if (ms < this.thresholdMs) return;
    const now = this.now();
    if (now - this.lastLineMs < this.intervalMs) {
      this.held++;
      this.heldMaxMs = Math.max(this.heldMaxMs, ms);
      return;
    }
    const slowMs = Math.round(ms);
    const fields = describeOperation();
    this.log.warn(
      { event: this.event, ms: slowMs, ...fields, thresholdMs: this.thresholdMs },
      `${this.what} took ${slowMs} ms (${describe(fields)}; threshold ${this.thresholdMs} ms)`,
    );
    this.lastLineMs = now;
  }

  tick(): void {
    if (this.held === 0 || this.now() - this.lastLineMs < this.intervalMs) return;
    const count = this.held;
    const maxMs = Math.round(this.heldMaxMs);
    this.held = 0;
    this.heldMaxMs = 0;
    this.lastLineMs = this.now();
    this.log.warn(
      { event: this.event, count, maxMs, thresholdMs: this.thresholdMs },
      `${this.what} was slow ${count} more times since the last line, the slowest ${maxMs} ms (threshold ${this.thresholdMs} ms)`,
    );
  }
}

function describe(fields: Record<string, number>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
}

function parseMember(context: string | undefined): Member | undefined {
  if (!context) return undefined;
  try {
    return JSON.parse(context) as Member;
  } catch {
    return undefined;
  }
}

/** Why the process (or node) stops, logged where the stop begins. */
export type StopReason = 'signal' | 'fatal' | 'removed' | 'upgrade_needed' | 'startup_failed';

/**
 * The line that says why this member stops: `event: "stopping"`, the reason
 * and what goes with it (the signal, the error): a signal at info, a
 * removal at warn, the rest (something is wrong) at fatal.
 */
export function logStop(
  log: Logger,
  reason: StopReason,
  detail: { signal?: string; err?: unknown; exitCode?: number; message?: string } = {},
): void {
  const fields = {
    event: 'stopping',
    reason,
    ...(detail.signal ? { signal: detail.signal } : {}),
    ...(detail.exitCode !== undefined ? { exitCode: detail.exitCode } : {}),
    ...(detail.err !== undefined ? { err: detail.err } : {}),
  };
  const text =
    detail.message ??
    (reason === 'signal'
      ? `stopping: received ${detail.signal ?? 'a signal'}`
      : `stopping: ${reason.replace('_', ' ')}${detail.err instanceof Error ? `: ${detail.err.message}` : ''}`);
  if (reason === 'signal') log.info(fields, text);
  else if (reason === 'removed') log.warn(fields, text);
  else log.fatal(fields, text);
}
