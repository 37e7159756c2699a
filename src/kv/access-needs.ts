import type { AccessNeed, AuthResource } from './auth.js';
import type { Command, TxnOp } from './commands.js';
import {
  ELECTION_PREFIX,
  isReservedKey,
  LOCK_PREFIX,
  REGISTRY_PREFIX,
} from './coordination-keys.js';

/**
 * The resource and name a stored key belongs to: user keys are `kv`; the
 * registry's, locks' and elections' keys live under their reserved prefixes
 * (coordination-keys.ts), and a permission's prefix applies to the name after it.
 */
export function resourceOfKey(key: string): { resource: AuthResource; name: string } {
  if (key.startsWith(REGISTRY_PREFIX))
    return { resource: 'registry', name: key.slice(REGISTRY_PREFIX.length) };
  if (key.startsWith(LOCK_PREFIX))
    return { resource: 'locks', name: key.slice(LOCK_PREFIX.length) };
  if (key.startsWith(ELECTION_PREFIX))
    return { resource: 'elections', name: key.slice(ELECTION_PREFIX.length) };
  return { resource: 'kv', name: key };
}

function need(key: string, access: 'read' | 'write'): AccessNeed {
  const { resource, name } = resourceOfKey(key);
  return { resource, key: name, access };
}

/** A write, and with a guard (a compare on the key) a read too. */
function guarded(key: string, hasGuard: boolean): AccessNeed[] {
  return hasGuard ? [need(key, 'write'), need(key, 'read')] : [need(key, 'write')];
}

/**
 * What a command needs of its user (API.md "What needs which permission"):
 * read for compares and gets (a put's or delete's guard is a compare), write
 * for puts and deletes, read on a fenced lock. The state machine checks it again at apply, so a permission taken
 * away after the API's check cannot be used by a write already in flight.
 * Auth commands and compaction are root's; leases are checked by ownership.
 */
export function accessNeedsOf(cmd: Command): AccessNeed[] | 'root' | 'none' {
  switch (cmd.type) {
    case 'put':
      return guarded(cmd.key, cmd.prevRevision !== undefined || cmd.prevValue !== undefined);
    case 'delete':
      return guarded(cmd.key, cmd.prevRevision !== undefined);
    case 'txn': {
      // The registry and elections write through txns whose compares and gets guard the very
      // key they write; their routes need write on that name (API.md), so such a guard needs
      // write too. Users' own txns cannot name reserved keys: their compares and gets need read.
      const written = new Set(
        [...cmd.success, ...cmd.failure].filter((op) => op.op !== 'get').map((op) => op.key),
      );
      const guard = (key: string) =>
        need(key, isReservedKey(key) && written.has(key) ? 'write' : 'read');
      const opNeeds = (op: TxnOp) => (op.op === 'get' ? guard(op.key) : need(op.key, 'write'));
      return [
        ...cmd.compare.map((c) =>
          'lock' in c
            ? { resource: 'locks' as const, key: c.lock, access: 'read' as const }
            : guard(c.key),
        ),
        ...cmd.success.map(opNeeds),
        ...cmd.failure.map(opNeeds),
      ];
    }
    case 'leaseGrant':
    case 'leaseKeepAlive':
    case 'leaseRevoke':
    case 'leaseCheckpoint':
    case 'sync':
      return 'none';
    default:
      return 'root';
  }
}
