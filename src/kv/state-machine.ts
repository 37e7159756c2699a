import { accessNeedsOf } from './access-needs.js';
import { type Alarm, AlarmTable } from './alarms.js';
import { type AuthRole, AuthTable, type AuthUser, ROOT_ROLE, ROOT_USER } from './auth.js';
import { decodeCommand } from './command-decode.js';
import {
  type AlarmCommand,
  type AuthCommand,
  type Command,
  type CompactCommand,
  type DeleteCommand,
  isFenceCompare,
  type LeaseCheckpointCommand,
  type LeaseGrantCommand,
  type LeaseKeepAliveCommand,
  type LeaseRevokeCommand,
  type PutCommand,
  type TxnCommand,
  type TxnOp,
} from './commands.js';
import { isReservedKey, lockWaitersPrefix } from './coordination-keys.js';
import { DEFAULT_DEDUP_OPTIONS, type DedupOptions, DedupTable, dedupKeyOf } from './dedup.js';
import { assert, CommandNotUnderstoodError, KvInvariantError } from './errors.js';
import { type LeaseInfo, type LeaseState, LeaseTable } from './leases.js';
import { DEFAULT_KV_LIMITS, exceededLimit, type KvLimits } from './limits.js';
import { type KvMutation, MutationLog } from './mutations.js';
import type { KeyFilter, KeyValue, RevisionChange } from './mvcc/key-value.js';
import {
  type CompactionCounts,
  type GetOptions,
  MvccStore,
  type RangeOptions,
} from './mvcc/store.js';
import type { StoredVersion } from './mvcc/stored-version.js';
import { decodeVersionRecord, encodeVersionRecord } from './mvcc/version-record.js';
import {
  ALARM_RECORD_PREFIX,
  AUTH_META_RECORD_KEY,
  AUTH_ROLE_RECORD_PREFIX,
  AUTH_USER_RECORD_PREFIX,
  DEDUP_RECORD_PREFIX,
  LEASE_RECORD_PREFIX,
  META_RECORD_KEY,
  parseVersionRecordKey,
  VERSION_RECORD_PREFIX,
  versionRecordKey,
} from './record-keys.js';
import {
  type ApplyResult,
  type ChangesResult,
  type CommandResult,
  type ErrorResult,
  errorResult,
  type GetResult,
  type RangeResult,
  type SkippedResult,
  type TxnOpResult,
} from './results.js';
import { decodeSnapshot, encodeSnapshot } from './snapshot-codec.js';
import { LEASE_BYTES, RECORD_OVERHEAD_BYTES } from './state-size.js';
import { utf8Decode, utf8Encode } from './text.js';
import { branchConflict, compareHolds } from './txn.js';
import { WatchHub } from './watch-hub.js';

/** Every replica must use the same limits and dedup options: they change results. */
export interface KvStateMachineOptions {
  readonly limits?: Partial<KvLimits>;
  readonly dedup?: Partial<DedupOptions>;
  /** Pass the same hub to restore() so watchers survive a snapshot install. */
  readonly watchHub?: WatchHub;
  /** Record mutations for takeMutations() (default true); off for a memory-only node. */
  readonly trackMutations?: boolean;
  /**
   * The command types this build's version has (the server derives them from
   * its version table); an entry of another type stops apply() with
   * CommandNotUnderstoodError. Default: every type the decoder knows.
   */
  readonly understoodCommands?: ReadonlySet<string>;
}

/** The `m/meta` record. */
interface Meta {
  readonly revision: number;
  readonly compactRevision: number;
  /** max(atMs) over applied commands: the state machine clock, never goes backwards. */
  readonly clockMs: number;
  readonly dedupSeq: number;
}

export interface KvStats {
  readonly revision: number;
  readonly compactRevision: number;
  readonly appliedIndex: number;
  /** Keys with uncompacted history, live or deleted. */
  readonly keysWithHistory: number;
  readonly leases: number;
  readonly dedupEntries: number;
  readonly watchers: number;
}

/** One applied compaction: the compact revision before and after, and what went. */
export interface CompactionReport extends CompactionCounts {
  readonly fromRevision: number;
  readonly toRevision: number;
}

const SKIPPED: SkippedResult = Object.freeze({ skipped: true });

/**
 * The replicated KV state machine: committed Raft entries in, results out.
 * Deterministic: the same entries give the same results, state, snapshots and
 * mutations on every replica. No clock, timers, randomness or I/O: time is the
 * `atMs` of the commands; persistence goes through takeMutations()/load().
 *
 * Apply order per entry: skip if already applied → decode → advance the clock
 * and expire old dedup entries → replay a remembered result, or execute and
 * remember it → record meta → notify watchers of the revision, if any.
 */
export class KvStateMachine {
  /** Watchers are told of each applied revision; the server registers them here. */
  readonly watches: WatchHub;
  private readonly log: MutationLog;
  private readonly limits: KvLimits;
  private readonly dedupOptions: DedupOptions;
  private readonly understoodCommands: ReadonlySet<string> | undefined;
  private store: MvccStore;
  private leaseTable: LeaseTable;
  private dedup: DedupTable;
  private authTable: AuthTable;
  private alarmTable: AlarmTable;
  /** The auth records' share of sizeBytes, recounted when auth changes (rarely). */
  private authBytes = 0;
  private applied = 0;
  private clock = 0;
  /** The meta record as last persisted, to write it only when it changes. */
  private persistedMeta: string;
  /** What the last compaction applied here removed (this process only, for the log). */
  private compaction: CompactionReport | undefined;
  /** The revision the current apply produced, delivered to watchers at its end. */
  private change: RevisionChange | null = null;

  constructor(options: KvStateMachineOptions = {}) {
    this.log = new MutationLog(options.trackMutations ?? true);
    this.limits = { ...DEFAULT_KV_LIMITS, ...options.limits };
    this.dedupOptions = { ...DEFAULT_DEDUP_OPTIONS, ...options.dedup };
    this.understoodCommands = options.understoodCommands;
    this.watches = options.watchHub ?? new WatchHub();
    this.store = new MvccStore(this.log);
    this.leaseTable = new LeaseTable(this.log);
    this.dedup = new DedupTable(this.log, this.dedupOptions);
    this.authTable = new AuthTable(this.log);
    this.alarmTable = new AlarmTable(this.log);
    this.persistedMeta = JSON.stringify(this.meta());
  }

  /** The index of the last applied Raft entry; entries at or below it are skipped. */
  get appliedIndex(): number {
    return this.applied;
  }

  get revision(): number {
    return this.store.revision;
  }

  get compactRevision(): number {
    return this.store.compactRevision;
  }

  /** The state machine clock: the largest atMs applied so far. */
  get clockMs(): number {
    return this.clock;
  }

  /** What the last MVCC compaction applied by this instance removed; undefined if none. */
  get lastCompaction(): CompactionReport | undefined {
    return this.compaction;
  }

  /**
   * The estimated heap bytes of the replicated state (state-size.ts): history,
   * leases, remembered results, auth and alarms. A running sum kept on apply,
   * equal on every replica at the same applied index; the space quota compares it.
   */
  get sizeBytes(): number {
    return (
      this.store.sizeBytes +
      this.leaseTable.size * LEASE_BYTES +
      this.dedup.sizeBytes +
      this.authBytes +
      this.alarmTable.size * RECORD_OVERHEAD_BYTES
    );
  }

  /** The active alarms, ordered by member id. */
  alarms(): Alarm[] {
    return this.alarmTable.all();
  }

  stats(): KvStats {
    return {
      revision: this.store.revision,
      compactRevision: this.store.compactRevision,
      appliedIndex: this.applied,
      keysWithHistory: this.store.keyCount,
      leases: this.leaseTable.size,
      dedupEntries: this.dedup.size,
      watchers: this.watches.size,
    };
  }

  // ---- apply ----------------------------------------------------------------

  /**
   * Applies the committed entry at `index`. Indexes must increase, but may skip
   * (entries the server does not hand to the KV, e.g. membership changes).
   * Empty data is a Raft no-op. Never throws for bad input; throws
   * KvInvariantError if an invariant is broken and CommandNotUnderstoodError
   * for an entry of a newer raftkv, in both cases changing nothing (stop the node).
   */
  apply(index: number, data: Uint8Array): ApplyResult {
    assert(Number.isSafeInteger(index) && index > 0, `apply: bad index ${index}`);
    if (index <= this.applied) return SKIPPED;
    if (data.length === 0) {
      this.applied = index;
      return { ok: true, op: 'noop', revision: this.store.revision };
    }
    const decoded = decodeCommand(data, this.understoodCommands);
    if (!decoded.ok && decoded.newer) throw new CommandNotUnderstoodError(index, decoded.error);
    this.applied = index;
    if (!decoded.ok) return errorResult('invalid_request', decoded.error, this.store.revision);
    const { atMs, idempotencyKey, requestDigest, user, anonymous, cmd } = decoded.envelope;
    // A leader with a slower clock must not move time backwards.
    this.clock = Math.max(this.clock, atMs);
    this.dedup.expire(this.clock);
    const dedupKey = idempotencyKey === undefined ? undefined : dedupKeyOf(idempotencyKey, user);
    const remembered =
      dedupKey === undefined ? undefined : this.dedup.lookup(dedupKey, requestDigest);
    let result: CommandResult;
    if (remembered === 'mismatch') {
      result = this.error(
        'invalid_request',
        'this Idempotency-Key was already used for a different request; nothing was applied',
      );
    } else if (remembered !== undefined) {
      result = remembered;
    } else {
      // A user's command is checked again against the auth state at this entry: the API
      // checked an earlier state, and permissions may have been taken away since.
      let refusal =
        user !== undefined
          ? this.refusal(user, cmd)
          : anonymous && this.authTable.enabled
            ? this.error(
                'unauthenticated',
                'authentication was enabled before this request applied',
              )
            : undefined;
      // A refusal applied nothing: it is not remembered, so a retry once permitted can apply.
      refusal ??= this.quotaRefusal(cmd);
      result = refusal ?? this.execute(cmd);
      if (dedupKey !== undefined && refusal === undefined)
        this.dedup.remember(dedupKey, this.clock, requestDigest, result);
    }
    this.persistMeta();
    const change = this.change;
    this.change = null;
    if (change !== null) this.watches.notify(change);
    return result;
  }

  /**
   * permission_denied if `user` may not run `cmd` under the auth state at this
   * entry (API.md "What needs which permission"), else undefined. The API checks
   * the same before proposing; this catches permissions changed in between.
   */
  private refusal(user: string, cmd: Command): ErrorResult | undefined {
    const auth = this.authTable;
    if (!auth.enabled || auth.isRoot(user)) return undefined;
    const needs = accessNeedsOf(cmd);
    if (needs === 'root')
      return this.error('permission_denied', `only root may do this (${cmd.type})`);
    if (needs !== 'none') {
      const missing = needs.find((need) => !auth.permits(user, need));
      if (missing !== undefined)
        return this.error(
          'permission_denied',
          `user ${user} may not ${missing.access} ${missing.resource} "${missing.key}"`,
        );
    }
    if (cmd.type === 'leaseGrant' && cmd.owner !== user)
      return this.error('permission_denied', 'a lease is granted to the user who asks for it');
    for (const leaseId of leasesUsedBy(cmd)) {
      const lease = this.leaseTable.get(leaseId);
      // A lease granted by someone else (or before auth was on) is not this user's to use.
      if (lease !== undefined && lease.owner !== user)
        return this.error('permission_denied', `lease ${leaseId} belongs to another user`);
    }
    return undefined;
  }

  /**
   * quota_exceeded while a nospace alarm is active, for the commands that grow
   * the state (etcd's rule): puts, txns with a put in either branch, lease
   * grants. Reads, deletes, compaction, lease revokes and keepalives, auth and
   * alarms go on, so space can be freed and the alarm cleared.
   */
  private quotaRefusal(cmd: Command): ErrorResult | undefined {
    if (!this.alarmTable.any('nospace') || !growsState(cmd)) return undefined;
    const members = this.alarmTable
      .all()
      .filter((a) => a.alarm === 'nospace')
      .map((a) => a.memberId);
    return this.error(
      'quota_exceeded',
      `the space quota is exceeded (alarm nospace of member ${members.join(', ')}): writes that ` +
        'grow the state are refused until space is freed (delete keys, compact, revoke leases); ' +
        'nothing was applied',
    );
  }

  private execute(cmd: Command): CommandResult {
    const exceeded = exceededLimit(cmd, this.limits);
    if (exceeded !== undefined) return this.error('too_large', exceeded);
    switch (cmd.type) {
      case 'put':
        return this.put(cmd);
      case 'delete':
        return this.delete(cmd);
      case 'txn':
        return this.txn(cmd);
      case 'compact':
        return this.compact(cmd);
      case 'leaseGrant':
        return this.leaseGrant(cmd);
      case 'leaseRevoke':
        return this.leaseRevoke(cmd);
      case 'leaseKeepAlive':
        return this.leaseKeepAlive(cmd);
      case 'leaseCheckpoint':
        return this.leaseCheckpoint(cmd);
      case 'sync':
        return { ok: true, op: 'sync', revision: this.store.revision };
      case 'alarm':
        return this.alarm(cmd);
      default: {
        const result = this.applyAuth(cmd);
        this.authBytes = this.countAuthBytes();
        return result;
      }
    }
  }

  private alarm(cmd: AlarmCommand): CommandResult {
    let changed: Alarm[];
    if (cmd.action === 'raise') {
      // The decoder makes sure a raise names its member.
      const memberId = cmd.memberId as string;
      changed = this.alarmTable.raise(memberId, cmd.alarm) ? [{ memberId, alarm: cmd.alarm }] : [];
    } else {
      changed = this.alarmTable.clear(cmd.alarm, cmd.memberId);
    }
    return {
      ok: true,
      op: 'alarm',
      revision: this.store.revision,
      changed,
      alarms: this.alarmTable.all(),
    };
  }

  private countAuthBytes(): number {
    let bytes = 0;
    for (const [key, text] of this.authTable.records())
      bytes += key.length + text.length + RECORD_OVERHEAD_BYTES;
    return bytes;
  }

  /** Users, roles and the enabled flag. The API checks that the proposer is root. */
  private applyAuth(cmd: AuthCommand): CommandResult {
    const auth = this.authTable;
    const revision = this.store.revision;
    switch (cmd.type) {
      case 'authUserPut': {
        const unknownRole = cmd.roles?.find((r) => auth.role(r) === undefined);
        if (unknownRole !== undefined)
          return this.error('role_not_found', `role ${unknownRole} does not exist`);
        if (
          auth.enabled &&
          cmd.name === ROOT_USER &&
          cmd.roles !== undefined &&
          !cmd.roles.includes(ROOT_ROLE)
        )
          return this.error(
            'invalid_request',
            'the user root must keep the role root while auth is enabled',
          );
        const { created, user } = auth.putUser(cmd.name, {
          ...(cmd.passwordHash !== undefined ? { passwordHash: cmd.passwordHash } : {}),
          ...(cmd.roles !== undefined ? { roles: cmd.roles } : {}),
        });
        return { ok: true, op: 'authUserPut', revision, created, user: userView(user) };
      }
      case 'authUserDelete':
        if (auth.enabled && cmd.name === ROOT_USER)
          return this.error(
            'invalid_request',
            'the user root cannot be deleted while auth is enabled',
          );
        if (!auth.deleteUser(cmd.name))
          return this.error('user_not_found', `user ${cmd.name} does not exist`);
        return { ok: true, op: 'authUserDelete', revision, name: cmd.name };
      case 'authRolePut': {
        if (cmd.name === ROOT_ROLE)
          return this.error('invalid_request', 'the built-in role root cannot be changed');
        const created = auth.putRole(cmd.name, cmd.permissions);
        return {
          ok: true,
          op: 'authRolePut',
          revision,
          created,
          role: auth.role(cmd.name) as AuthRole,
        };
      }
      case 'authRoleDelete':
        if (cmd.name === ROOT_ROLE)
          return this.error('invalid_request', 'the built-in role root cannot be deleted');
        if (!auth.deleteRole(cmd.name))
          return this.error('role_not_found', `role ${cmd.name} does not exist`);
        return { ok: true, op: 'authRoleDelete', revision, name: cmd.name };
      case 'authEnable':
        if (!auth.isRoot(ROOT_USER))
          return this.error(
            'invalid_request',
            'auth cannot be enabled before a user root holding the role root exists',
          );
        // Enabling again changes nothing: tokens issued since the last enable stay valid.
        if (!auth.enabled) auth.enable(cmd.signingKey);
        return { ok: true, op: 'authEnable', revision, enabled: true };
      case 'authDisable':
        if (auth.enabled) auth.disable();
        return { ok: true, op: 'authDisable', revision, enabled: false };
    }
  }

  private put(cmd: PutCommand): CommandResult {
    if (cmd.lease !== undefined && !this.leaseTable.has(cmd.lease)) {
      return this.error('lease_not_found', `lease ${cmd.lease} not found`);
    }
    const current = this.store.latest(cmd.key);
    const guardFailed =
      (cmd.prevRevision !== undefined && (current?.modRevision ?? 0) !== cmd.prevRevision) ||
      (cmd.prevValue !== undefined && current?.value !== cmd.prevValue);
    if (guardFailed) return this.compareFailed(current);
    this.store.beginWrite();
    const { kv, prevKv } = this.store.put(cmd.key, cmd.value, cmd.lease ?? null);
    this.endWrite();
    return { ok: true, op: 'put', revision: this.store.revision, kv, prevKv };
  }

  private delete(cmd: DeleteCommand): CommandResult {
    let keys: string[];
    if (cmd.prefix) {
      keys = this.userRange(cmd.key).map((kv) => kv.key);
    } else {
      const current = this.store.latest(cmd.key);
      if (cmd.prevRevision !== undefined && (current?.modRevision ?? 0) !== cmd.prevRevision) {
        return this.compareFailed(current);
      }
      keys = current === null ? [] : [cmd.key];
    }
    const prevKvs = this.deleteKeys(keys);
    return {
      ok: true,
      op: 'delete',
      revision: this.store.revision,
      deleted: prevKvs.length,
      prevKvs,
    };
  }

  /**
   * The keys a client's prefix op covers: the empty prefix means every user
   * key, not the registry's, locks' and elections' keys (U+0000…), which only
   * their own commands may change.
   */
  private userRange(prefix: string): KeyValue[] {
    const kvs = this.store.rangeLatest(prefix);
    return prefix === '' ? kvs.filter((kv) => !isReservedKey(kv.key)) : kvs;
  }

  /**
   * The fencing token of lock `name`'s holder: the lowest createRevision among
   * its waiter keys (API.md "Locks"), or undefined when nobody holds it.
   */
  lockHolderToken(name: string): number | undefined {
    const waiters = this.store.range({ prefix: lockWaitersPrefix(name), keysOnly: true });
    if (!waiters.ok) return undefined;
    let token: number | undefined;
    for (const kv of waiters.kvs)
      if (token === undefined || kv.createRevision < token) token = kv.createRevision;
    return token;
  }

  private txn(cmd: TxnCommand): CommandResult {
    const conflict = branchConflict(cmd.success) ?? branchConflict(cmd.failure);
    if (conflict !== undefined) return this.error('invalid_request', conflict);
    // Compares all see the state before the txn.
    const succeeded = cmd.compare.every((compare) =>
      isFenceCompare(compare)
        ? this.lockHolderToken(compare.lock) === compare.token
        : compareHolds(compare, this.store.latest(compare.key)),
    );
    const ops = succeeded ? cmd.success : cmd.failure;
    for (const op of ops) {
      if (op.op === 'put' && op.lease !== undefined && !this.leaseTable.has(op.lease)) {
        return this.error('lease_not_found', `lease ${op.lease} not found`);
      }
    }
    this.store.beginWrite();
    const results = ops.map((op) => this.runTxnOp(op));
    this.endWrite();
    return { ok: true, op: 'txn', revision: this.store.revision, succeeded, results };
  }

  /** One op of a running txn: it sees the txn's earlier writes. */
  private runTxnOp(op: TxnOp): TxnOpResult {
    switch (op.op) {
      case 'put':
        return { op: 'put', kv: this.store.put(op.key, op.value, op.lease ?? null).kv };
      case 'get': {
        if (op.prefix) return { op: 'get', kvs: this.userRange(op.key) };
        const kv = this.store.latest(op.key);
        return { op: 'get', kvs: kv === null ? [] : [kv] };
      }
      case 'delete': {
        const keys = op.prefix ? this.userRange(op.key).map((kv) => kv.key) : [op.key];
        let deleted = 0;
        for (const key of keys) if (this.store.delete(key) !== null) deleted++;
        return { op: 'delete', deleted };
      }
    }
  }

  private compact(cmd: CompactCommand): CommandResult {
    if (cmd.revision > this.store.revision) {
      return this.error(
        'future_revision',
        `cannot compact at ${cmd.revision}: the current revision is ${this.store.revision}`,
      );
    }
    if (cmd.revision <= this.store.compactRevision) {
      return errorResult(
        'compacted',
        `revision ${cmd.revision} is already compacted (compactRevision ${this.store.compactRevision})`,
        this.store.revision,
        { compactRevision: this.store.compactRevision },
      );
    }
    const fromRevision = this.store.compactRevision;
    const counts = this.store.compact(cmd.revision);
    this.compaction = { fromRevision, toRevision: this.store.compactRevision, ...counts };
    return {
      ok: true,
      op: 'compact',
      revision: this.store.revision,
      compactRevision: this.store.compactRevision,
    };
  }

  private leaseGrant(cmd: LeaseGrantCommand): CommandResult {
    if (this.leaseTable.has(cmd.id))
      return this.error('invalid_request', `lease ${cmd.id} already exists`);
    this.leaseTable.grant(cmd.id, cmd.ttlMs, this.clock, this.applied, cmd.owner);
    return {
      ok: true,
      op: 'leaseGrant',
      revision: this.store.revision,
      id: cmd.id,
      ttlMs: cmd.ttlMs,
    };
  }

  private leaseRevoke(cmd: LeaseRevokeCommand): CommandResult {
    const lease = this.leaseTable.get(cmd.id);
    if (lease === undefined) return this.error('lease_not_found', `lease ${cmd.id} not found`);
    if (
      (cmd.ifRenewedAtIndex !== undefined && lease.renewedAtIndex !== cmd.ifRenewedAtIndex) ||
      (cmd.ifRenewedAtMs !== undefined && lease.lastRenewedAtMs !== cmd.ifRenewedAtMs)
    ) {
      return this.error(
        'compare_failed',
        `lease ${cmd.id} was renewed after its expiry was decided`,
      );
    }
    // All attached keys go in one revision, in key order (deterministic on every replica).
    const deleted = this.deleteKeys(this.store.keysOfLease(cmd.id)).length;
    this.leaseTable.remove(cmd.id);
    return { ok: true, op: 'leaseRevoke', revision: this.store.revision, id: cmd.id, deleted };
  }

  private leaseKeepAlive(cmd: LeaseKeepAliveCommand): CommandResult {
    const lease = this.leaseTable.renew(cmd.id, this.clock, this.applied);
    if (lease === undefined) return this.error('lease_not_found', `lease ${cmd.id} not found`);
    return {
      ok: true,
      op: 'leaseKeepAlive',
      revision: this.store.revision,
      id: cmd.id,
      ttlMs: lease.ttlMs,
    };
  }

  private leaseCheckpoint(cmd: LeaseCheckpointCommand): CommandResult {
    let updated = 0;
    for (const { id, remainingMs, renewedAtIndex, renewedAtMs } of cmd.leases) {
      // A keepalive ordered before this checkpoint makes its remaining TTL obsolete.
      const lease = this.leaseTable.get(id);
      if (renewedAtIndex !== undefined && lease?.renewedAtIndex !== renewedAtIndex) continue;
      if (renewedAtMs !== undefined && lease?.lastRenewedAtMs !== renewedAtMs) continue;
      if (this.leaseTable.checkpoint(id, remainingMs, this.clock)) updated++;
    }
    return { ok: true, op: 'leaseCheckpoint', revision: this.store.revision, updated };
  }

  /** Deletes existing keys in one revision (none: no revision). Returns the deleted versions. */
  private deleteKeys(keys: readonly string[]): KeyValue[] {
    if (keys.length === 0) return [];
    this.store.beginWrite();
    const prevKvs: KeyValue[] = [];
    for (const key of keys) {
      const prevKv = this.store.delete(key);
      if (prevKv !== null) prevKvs.push(prevKv);
    }
    this.endWrite();
    return prevKvs;
  }

  private endWrite(): void {
    const change = this.store.endWrite();
    if (change === null) return;
    assert(this.change === null, 'one command made two revisions');
    this.change = change;
  }

  private error(
    code:
      | 'invalid_request'
      | 'too_large'
      | 'lease_not_found'
      | 'future_revision'
      | 'compare_failed'
      | 'user_not_found'
      | 'role_not_found'
      | 'permission_denied'
      | 'unauthenticated'
      | 'quota_exceeded',
    message: string,
  ) {
    return errorResult(code, message, this.store.revision);
  }

  private compareFailed(current: KeyValue | null): CommandResult {
    return errorResult('compare_failed', 'a guard was false', this.store.revision, { kv: current });
  }

  // ---- reads ----------------------------------------------------------------

  /** A key at the current or a past revision; kv null if it did not exist. */
  get(key: string, options?: GetOptions): GetResult {
    return this.store.get(key, options);
  }

  /** Keys in code point (= UTF-8 byte) order; see RangeOptions. */
  range(options?: RangeOptions): RangeResult {
    return this.store.range(options);
  }

  /** History for watches: see MvccStore.changes. */
  changes(fromRevision: number, filter: KeyFilter, toRevision?: number): ChangesResult {
    return this.store.changes(fromRevision, filter, toRevision);
  }

  lease(id: string): LeaseInfo | undefined {
    const lease = this.leaseTable.get(id);
    return lease === undefined ? undefined : { ...lease, keys: this.store.keysOfLease(id) };
  }

  /** Every lease, in id order. */
  leases(): LeaseState[] {
    return this.leaseTable.all();
  }

  /** Users, roles, permissions and the token-signing key (read-only to callers). */
  get auth(): Pick<
    AuthTable,
    | 'enabled'
    | 'revision'
    | 'signingKey'
    | 'user'
    | 'role'
    | 'allUsers'
    | 'allRoles'
    | 'isRoot'
    | 'permits'
  > {
    return this.authTable;
  }

  // ---- persistence and snapshots --------------------------------------------

  /**
   * The record-level changes since the last call, coalesced by record key. The
   * server writes them with the applied index in one atomic batch.
   */
  takeMutations(): KvMutation[] {
    return this.log.take();
  }

  /** Every persisted record of the current state (what load() takes), in no particular order. */
  *records(): Generator<[string, Uint8Array], void, undefined> {
    for (const [key, text] of this.recordTexts()) yield [key, utf8Encode(text)];
  }

  /**
   * The whole state (uncompacted history, leases, dedup, meta) for Raft's
   * InstallSnapshot or a backup; the applied index travels in Raft's snapshot
   * metadata. Equal states give equal bytes.
   */
  snapshot(): Uint8Array {
    return encodeSnapshot(this.recordTexts());
  }

  /** Records with their values as JSON text. */
  private *recordTexts(): Generator<[string, string], void, undefined> {
    yield [META_RECORD_KEY, JSON.stringify(this.meta())];
    for (const version of this.store.versions()) {
      yield [versionRecordKey(version.revision, version.sub), encodeVersionRecord(version)];
    }
    yield* this.leaseTable.records();
    yield* this.dedup.records();
    yield* this.authTable.records();
    yield* this.alarmTable.records();
  }

  /**
   * Rebuilds a state machine from a snapshot. The server must then replace all
   * of its persisted KV records with restored.records() (takeMutations() starts
   * empty). A zero-length snapshot is the empty state. Throws KvInvariantError
   * on a corrupt snapshot.
   */
  static restore(
    data: Uint8Array,
    appliedIndex: number,
    options?: KvStateMachineOptions,
  ): KvStateMachine {
    return KvStateMachine.load(decodeSnapshot(data), appliedIndex, options);
  }

  /** Rebuilds the exact state from persisted records (any order). Throws KvInvariantError if they are corrupt. */
  static load(
    records: Iterable<readonly [string, Uint8Array]>,
    appliedIndex: number,
    options?: KvStateMachineOptions,
  ): KvStateMachine {
    assert(
      Number.isSafeInteger(appliedIndex) && appliedIndex >= 0,
      `load: bad appliedIndex ${appliedIndex}`,
    );
    let meta: Meta = { revision: 0, compactRevision: 0, clockMs: 0, dedupSeq: 0 };
    const versions: StoredVersion[] = [];
    const leaseValues: Uint8Array[] = [];
    const dedupRecords: [string, Uint8Array][] = [];
    let authMeta: Uint8Array | undefined;
    const authUsers: Uint8Array[] = [];
    const authRoles: Uint8Array[] = [];
    const alarmValues: Uint8Array[] = [];
    for (const [key, value] of records) {
      if (key === META_RECORD_KEY) {
        meta = decodeMeta(value);
      } else if (key.startsWith(VERSION_RECORD_PREFIX)) {
        const id = parseVersionRecordKey(key);
        if (id === undefined) throw new KvInvariantError(`load: bad version record key ${key}`);
        versions.push(decodeVersionRecord(id.revision, id.sub, value));
      } else if (key.startsWith(LEASE_RECORD_PREFIX)) {
        leaseValues.push(value);
      } else if (key.startsWith(DEDUP_RECORD_PREFIX)) {
        dedupRecords.push([key.slice(DEDUP_RECORD_PREFIX.length), value]);
      } else if (key === AUTH_META_RECORD_KEY) {
        authMeta = value;
      } else if (key.startsWith(AUTH_USER_RECORD_PREFIX)) {
        authUsers.push(value);
      } else if (key.startsWith(AUTH_ROLE_RECORD_PREFIX)) {
        authRoles.push(value);
      } else if (key.startsWith(ALARM_RECORD_PREFIX)) {
        alarmValues.push(value);
      } else {
        throw new KvInvariantError(`load: unknown record ${JSON.stringify(key)}`);
      }
    }
    const machine = new KvStateMachine(options);
    machine.store = MvccStore.fromVersions(
      machine.log,
      versions,
      meta.revision,
      meta.compactRevision,
    );
    machine.leaseTable = LeaseTable.fromRecords(machine.log, leaseValues);
    machine.dedup = DedupTable.fromRecords(
      machine.log,
      machine.dedupOptions,
      dedupRecords,
      meta.dedupSeq,
    );
    machine.authTable = AuthTable.fromRecords(machine.log, authMeta, authUsers, authRoles);
    machine.authBytes = machine.countAuthBytes();
    machine.alarmTable = AlarmTable.fromRecords(machine.log, alarmValues);
    for (const leaseId of machine.store.attachedLeases()) {
      assert(machine.leaseTable.has(leaseId), `load: keys attached to missing lease ${leaseId}`);
    }
    machine.clock = meta.clockMs;
    machine.applied = appliedIndex;
    machine.persistedMeta = JSON.stringify(meta);
    return machine;
  }

  private meta(): Meta {
    return {
      revision: this.store.revision,
      compactRevision: this.store.compactRevision,
      clockMs: this.clock,
      dedupSeq: this.dedup.nextSeq,
    };
  }

  private persistMeta(): void {
    const meta = JSON.stringify(this.meta());
    if (meta === this.persistedMeta) return;
    this.persistedMeta = meta;
    this.log.put(META_RECORD_KEY, meta);
  }
}

/** Whether a command can add to the state (what a nospace alarm refuses). */
function growsState(cmd: Command): boolean {
  switch (cmd.type) {
    case 'put':
    case 'leaseGrant':
      return true;
    case 'txn':
      return cmd.success.some((op) => op.op === 'put') || cmd.failure.some((op) => op.op === 'put');
    default:
      return false;
  }
}

/** Leases a command uses: attaches keys to, keeps alive or revokes. */
function leasesUsedBy(cmd: Command): string[] {
  switch (cmd.type) {
    case 'put':
      return cmd.lease === undefined ? [] : [cmd.lease];
    case 'txn': {
      const leases: string[] = [];
      for (const op of [...cmd.success, ...cmd.failure])
        if (op.op === 'put' && op.lease !== undefined) leases.push(op.lease);
      return leases;
    }
    case 'leaseKeepAlive':
    case 'leaseRevoke':
      return [cmd.id];
    default:
      return [];
  }
}

function userView(user: AuthUser): { name: string; roles: readonly string[] } {
  return { name: user.name, roles: user.roles };
}

function decodeMeta(bytes: Uint8Array): Meta {
  const meta = JSON.parse(utf8Decode(bytes)) as Meta;
  assert(
    [meta.revision, meta.compactRevision, meta.clockMs, meta.dedupSeq].every(Number.isSafeInteger),
    'meta record: malformed',
  );
  return meta;
}
