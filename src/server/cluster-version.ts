import type { Command } from '../kv/commands.js';
import type { CommandNotUnderstoodError } from '../kv/errors.js';
import { ServerError } from './errors.js';
import type { ServerCommand } from './server-commands.js';
import { VERSION } from './version.js';

/**
 * Versions and upgrades (README "Upgrades and the compatibility promise").
 *
 * 1. Every member publishes the version it runs through the Raft log (the
 *    `memberAttributes` server command), so every member's table holds the
 *    same versions at the same index.
 * 2. The cluster version is the lowest of the members' versions; a member that
 *    has not published one yet counts as the oldest version this build can
 *    share a cluster with (conservative: it may be that old).
 * 3. Every command kind has the version that introduced it (COMMAND_INTRODUCED_IN).
 *    A member proposes a command only once the cluster version has it, so an
 *    older member never receives it in the normal course.
 * 4. A member never applies what it does not understand: an entry of a newer
 *    command type or format stops it (UpgradeNeededError) instead of being
 *    applied as a no-op, which would make it diverge.
 */

/** The raftkv version this build runs (version.ts decides it). */
export const BUILD_VERSION: string = VERSION;

/** The first release: nothing older exists to be compatible with. */
const FIRST_RELEASE = '0.1.0';

/**
 * The version that introduced each command kind, KV commands (src/kv/commands.ts)
 * and server commands alike. Append only: a kind's version never changes. The
 * compiler checks that every kind is here.
 */
export const COMMAND_INTRODUCED_IN: Readonly<
  Record<Command['type'] | ServerCommand['type'], string>
> = {
  put: '0.1.0',
  delete: '0.1.0',
  txn: '0.1.0',
  compact: '0.1.0',
  leaseGrant: '0.1.0',
  leaseRevoke: '0.1.0',
  leaseKeepAlive: '0.1.0',
  leaseCheckpoint: '0.1.0',
  authUserPut: '0.1.0',
  authUserDelete: '0.1.0',
  authRolePut: '0.1.0',
  authRoleDelete: '0.1.0',
  authEnable: '0.1.0',
  authDisable: '0.1.0',
  memberAttributes: '0.1.0',
  sync: '0.2.0',
  // Added before 0.1.0 shipped (every 0.1.0 build knows it): the space quota's alarm.
  alarm: '0.1.0',
};

const SERVER_COMMAND_TYPES: ReadonlySet<string> = new Set<ServerCommand['type']>([
  'memberAttributes',
]);

/** `major.minor.patch` as numbers, or undefined if `version` is not of that form. */
export function parseVersion(version: string): [number, number, number] | undefined {
  const m = /^(\d{1,6})\.(\d{1,6})\.(\d{1,6})$/.exec(version);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Negative, zero or positive as a is older than, the same as or newer than b. Both must parse. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) throw new Error(`not a version: ${pa ? b : a}`);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

/**
 * The oldest raftkv that may share a cluster with `version`: the previous
 * minor release (N-1), never older than the first release.
 */
export function oldestCompatibleVersion(version: string = BUILD_VERSION): string {
  const v = parseVersion(version);
  if (!v) throw new Error(`not a version: ${version}`);
  const previous = v[1] > 0 ? `${v[0]}.${v[1] - 1}.0` : `${v[0]}.0.0`;
  return compareVersions(previous, FIRST_RELEASE) < 0 ? FIRST_RELEASE : previous;
}

/**
 * The cluster version: the lowest of the members' published versions, where a
 * member without one (not published yet, or unreadable) counts as `oldest`.
 */
export function clusterVersionOf(
  memberVersions: readonly (string | undefined)[],
  oldest: string = oldestCompatibleVersion(),
): string {
  let lowest: string | undefined;
  for (const published of memberVersions) {
    const v = published !== undefined && parseVersion(published) ? published : oldest;
    if (lowest === undefined || compareVersions(v, lowest) < 0) lowest = v;
  }
  return lowest ?? oldest;
}

/** The command kinds `version` has: what a member of that version understands, or may propose. */
export function commandsOf(version: string): Set<string> {
  const kinds = new Set<string>();
  for (const [kind, introduced] of Object.entries(COMMAND_INTRODUCED_IN))
    if (compareVersions(introduced, version) <= 0) kinds.add(kind);
  return kinds;
}

/** The KV command types this build understands (KvStateMachineOptions.understoodCommands). */
export function understoodKvCommands(version: string = BUILD_VERSION): ReadonlySet<string> {
  const kinds = commandsOf(version);
  for (const kind of SERVER_COMMAND_TYPES) kinds.delete(kind);
  return kinds;
}

/** Is `kind` a server command type this build understands? */
export function understandsServerCommand(kind: string, version: string = BUILD_VERSION): boolean {
  return SERVER_COMMAND_TYPES.has(kind) && commandsOf(version).has(kind);
}

/**
 * The cluster version as this member's applied state has it, and the gate on
 * proposals: a command is proposed only if both the cluster version and this
 * build have it. Recomputed whenever the member table changes.
 */
export class ClusterVersionGate {
  private current: string;
  private proposable: ReadonlySet<string>;

  constructor(
    memberVersions: readonly (string | undefined)[],
    private readonly build: string = BUILD_VERSION,
  ) {
    this.current = clusterVersionOf(memberVersions, oldestCompatibleVersion(build));
    this.proposable = this.proposableAt(this.current);
  }

  get version(): string {
    return this.current;
  }

  /** Recomputes from the member table; returns the previous version if it changed. */
  update(memberVersions: readonly (string | undefined)[]): string | undefined {
    const next = clusterVersionOf(memberVersions, oldestCompatibleVersion(this.build));
    if (next === this.current) return undefined;
    const previous = this.current;
    this.current = next;
    this.proposable = this.proposableAt(next);
    return previous;
  }

  /** undefined if `kind` may be proposed now, else the error to answer with (never proposed). */
  refusal(kind: string): ServerError | undefined {
    if (this.proposable.has(kind)) return undefined;
    const introduced = (COMMAND_INTRODUCED_IN as Record<string, string | undefined>)[kind];
    if (introduced === undefined || compareVersions(introduced, this.build) > 0)
      return new ServerError(
        'cluster_version_too_old',
        `command "${kind}" is not known to raftkv ${this.build} (this member): upgrade it first`,
      );
    return new ServerError(
      'cluster_version_too_old',
      `command "${kind}" needs cluster version ${introduced}; the cluster version is ` +
        `${this.current} (its oldest member's): upgrade every member first`,
    );
  }

  private proposableAt(clusterVersion: string): ReadonlySet<string> {
    const upTo = compareVersions(clusterVersion, this.build) < 0 ? clusterVersion : this.build;
    return commandsOf(upTo);
  }
}

/**
 * Why a member stops rather than apply an entry it does not understand. The
 * process exits with EXIT_UPGRADE_NEEDED (exit-codes.ts); restarted with a
 * raftkv that knows the entry, it applies it and goes on.
 */
export class UpgradeNeededError extends Error {
  readonly index: number;
  constructor(cause: CommandNotUnderstoodError, build: string = BUILD_VERSION) {
    super(`upgrade this member: ${cause.message}; it runs raftkv ${build}`, { cause });
    this.name = 'UpgradeNeededError';
    this.index = cause.index;
  }
}
