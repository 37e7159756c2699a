import { ALARM_MEMBER_ID, ALARM_TYPES, type AlarmType } from './alarms.js';
import { AUTH_ACCESSES, AUTH_NAME_PATTERN, AUTH_RESOURCES, type Permission } from './auth.js';
import type {
  Command,
  CommandEnvelope,
  Compare,
  CompareOp,
  CompareTarget,
  TxnOp,
} from './commands.js';
import { isWellFormed, utf8Decode } from './text.js';

export type DecodeResult =
  | { readonly ok: true; readonly envelope: CommandEnvelope }
  | {
      readonly ok: false;
      readonly error: string;
      /**
       * True when the entry is well-formed but from a newer raftkv: an envelope
       * version above 1, or a command type this build does not know. Such an
       * entry must never be applied as a no-op (the newer members apply it, so
       * this one would diverge): the server stops and asks for an upgrade.
       * False for garbage (a bug or corruption), which applies as invalid_request.
       */
      readonly newer: boolean;
    };

/** Raised inside the decoder only; decodeCommand turns it into a returned error. */
class Malformed extends Error {}

/** An entry this build is too old for (see DecodeResult.newer). */
class Newer extends Error {}

/**
 * Parses and structurally validates a command entry. Never throws: garbage
 * bytes (a bug, a corrupt entry) become an error that the state machine
 * applies as a deterministic invalid_request no-op; an entry of a newer
 * format or command type comes back with `newer` set. Size limits are
 * configuration, so the state machine checks them, not this.
 *
 * `understood` narrows the command types this build accepts to those its
 * version has (src/server/cluster-version.ts); a type outside it is newer even
 * if this decoder can parse it. Without it every type below is understood.
 */
export function decodeCommand(bytes: Uint8Array, understood?: ReadonlySet<string>): DecodeResult {
  try {
    return { ok: true, envelope: parseEnvelope(JSON.parse(utf8Decode(bytes)), understood) };
  } catch (error) {
    if (error instanceof Newer) return { ok: false, error: error.message, newer: true };
    if (error instanceof Malformed) return { ok: false, error: error.message, newer: false };
    // TextDecoder (bad UTF-8) and JSON.parse (bad JSON) report their own errors.
    return { ok: false, error: `not a command: ${(error as Error).message}`, newer: false };
  }
}

const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,128}$/;
const REQUEST_DIGEST = /^[\x21-\x7e]{1,128}$/;
const PASSWORD_HASH_LENGTH_MAX = 1024;
const LEASE_ID_LENGTH_MAX = 128;
const COMPARE_TARGETS: readonly CompareTarget[] = [
  'value',
  'version',
  'createRevision',
  'modRevision',
  'lease',
];
const COMPARE_OPS: readonly CompareOp[] = ['==', '!=', '<', '>'];

function parseEnvelope(raw: unknown, understood: ReadonlySet<string> | undefined): CommandEnvelope {
  const envelope = object(raw, 'envelope');
  if (Number.isSafeInteger(envelope.v) && (envelope.v as number) > 1)
    throw new Newer(`command envelope version ${String(envelope.v)} (this raftkv reads 1)`);
  if (envelope.v !== 1) throw new Malformed(`unsupported command version ${String(envelope.v)}`);
  const atMs = count(envelope.atMs, 'atMs');
  const cmd = object(envelope.cmd, 'cmd');
  // Only the server names command types (never a client), so an unknown name is a newer one.
  if (typeof cmd.type === 'string' && understood !== undefined && !understood.has(cmd.type))
    throw new Newer(`command type ${JSON.stringify(cmd.type)}`);
  return parseEnvelopeRest(envelope, atMs, parseCommand(cmd));
}

function parseEnvelopeRest(
  envelope: Record<string, unknown>,
  atMs: number,
  cmd: Command,
): CommandEnvelope {
  if (
    envelope.idempotencyKey === undefined &&
    envelope.user === undefined &&
    envelope.anonymous === undefined &&
    envelope.requestDigest === undefined
  )
    return { v: 1, atMs, cmd };
  const idempotencyKey = envelope.idempotencyKey;
  if (
    idempotencyKey !== undefined &&
    (typeof idempotencyKey !== 'string' || !IDEMPOTENCY_KEY.test(idempotencyKey))
  ) {
    throw new Malformed('idempotencyKey must be 1 to 128 printable ASCII characters');
  }
  const requestDigest = envelope.requestDigest;
  if (
    requestDigest !== undefined &&
    (typeof requestDigest !== 'string' || !REQUEST_DIGEST.test(requestDigest))
  ) {
    throw new Malformed('requestDigest must be 1 to 128 printable ASCII characters');
  }
  return withOptional({ v: 1, atMs, cmd } as CommandEnvelope, {
    idempotencyKey,
    requestDigest,
    user: envelope.user === undefined ? undefined : authName(envelope.user, 'user'),
    anonymous: envelope.anonymous === undefined ? undefined : anonymousFlag(envelope.anonymous),
  });
}

function parseCommand(cmd: Record<string, unknown>): Command {
  switch (cmd.type) {
    case 'put':
      return withOptional(
        { type: 'put', key: key(cmd.key, 'key'), value: text(cmd.value, 'value') },
        {
          lease: cmd.lease === undefined ? undefined : leaseId(cmd.lease),
          prevRevision:
            cmd.prevRevision === undefined ? undefined : count(cmd.prevRevision, 'prevRevision'),
          prevValue: cmd.prevValue === undefined ? undefined : text(cmd.prevValue, 'prevValue'),
        },
      );
    case 'delete': {
      const prefix = optionalBoolean(cmd.prefix, 'prefix');
      const prevRevision =
        cmd.prevRevision === undefined ? undefined : count(cmd.prevRevision, 'prevRevision');
      if (prefix && prevRevision !== undefined) {
        throw new Malformed('prevRevision cannot be combined with prefix');
      }
      return withOptional(
        { type: 'delete', key: prefix ? text(cmd.key, 'key') : key(cmd.key, 'key') },
        { prefix: prefix || undefined, prevRevision },
      );
    }
    case 'txn':
      return {
        type: 'txn',
        compare: array(cmd.compare, 'compare').map(parseCompare),
        success: array(cmd.success, 'success').map(parseOp),
        failure: array(cmd.failure, 'failure').map(parseOp),
      };
    case 'compact':
      return { type: 'compact', revision: count(cmd.revision, 'revision') };
    case 'leaseGrant': {
      const ttlMs = count(cmd.ttlMs, 'ttlMs');
      if (ttlMs < 1) throw new Malformed('ttlMs must be at least 1');
      return withOptional(
        { type: 'leaseGrant', id: leaseId(cmd.id), ttlMs },
        { owner: cmd.owner === undefined ? undefined : authName(cmd.owner, 'owner') },
      );
    }
    case 'leaseRevoke':
      return {
        type: 'leaseRevoke',
        id: leaseId(cmd.id),
        ...(cmd.ifRenewedAtIndex !== undefined
          ? { ifRenewedAtIndex: count(cmd.ifRenewedAtIndex, 'ifRenewedAtIndex') }
          : {}),
        ...(cmd.ifRenewedAtMs !== undefined
          ? { ifRenewedAtMs: count(cmd.ifRenewedAtMs, 'ifRenewedAtMs') }
          : {}),
      };
    case 'leaseKeepAlive':
      return { type: 'leaseKeepAlive', id: leaseId(cmd.id) };
    case 'leaseCheckpoint':
      return {
        type: 'leaseCheckpoint',
        leases: array(cmd.leases, 'leases').map((raw) => {
          const entry = object(raw, 'leases[]');
          return {
            id: leaseId(entry.id),
            remainingMs: count(entry.remainingMs, 'remainingMs'),
            ...(entry.renewedAtIndex !== undefined
              ? { renewedAtIndex: count(entry.renewedAtIndex, 'renewedAtIndex') }
              : {}),
            ...(entry.renewedAtMs !== undefined
              ? { renewedAtMs: count(entry.renewedAtMs, 'renewedAtMs') }
              : {}),
          };
        }),
      };
    case 'authUserPut': {
      const hash = cmd.passwordHash;
      if (
        hash !== undefined &&
        hash !== null &&
        (typeof hash !== 'string' || hash === '' || hash.length > PASSWORD_HASH_LENGTH_MAX)
      )
        throw new Malformed('passwordHash must be a non-empty string or null');
      return withOptional(
        { type: 'authUserPut', name: authName(cmd.name, 'name') },
        {
          passwordHash: hash,
          roles:
            cmd.roles === undefined
              ? undefined
              : array(cmd.roles, 'roles').map((r) => authName(r, 'role')),
        },
      );
    }
    case 'authUserDelete':
      return { type: 'authUserDelete', name: authName(cmd.name, 'name') };
    case 'authRolePut':
      return {
        type: 'authRolePut',
        name: authName(cmd.name, 'name'),
        permissions: array(cmd.permissions, 'permissions').map(parsePermission),
      };
    case 'authRoleDelete':
      return { type: 'authRoleDelete', name: authName(cmd.name, 'name') };
    case 'authEnable':
      return { type: 'authEnable', signingKey: key(cmd.signingKey, 'signingKey') };
    case 'authDisable':
      return { type: 'authDisable' };
    case 'sync':
      return { type: 'sync' };
    case 'alarm': {
      if (cmd.action !== 'raise' && cmd.action !== 'clear')
        throw new Malformed(`unknown alarm action ${String(cmd.action)}`);
      if (!ALARM_TYPES.includes(cmd.alarm as AlarmType))
        throw new Malformed(`unknown alarm ${String(cmd.alarm)}`);
      const memberId = cmd.memberId;
      if (
        memberId !== undefined &&
        (typeof memberId !== 'string' || !ALARM_MEMBER_ID.test(memberId))
      )
        throw new Malformed('memberId must be 1 to 128 printable ASCII characters without "/"');
      if (memberId === undefined && cmd.action === 'raise')
        throw new Malformed('raising an alarm needs the memberId');
      return withOptional(
        { type: 'alarm', action: cmd.action, alarm: cmd.alarm as AlarmType },
        { memberId },
      );
    }
    default:
      if (typeof cmd.type === 'string') throw new Newer(`command type ${JSON.stringify(cmd.type)}`);
      throw new Malformed(`unknown command type ${JSON.stringify(cmd.type)}`);
  }
}

function parsePermission(raw: unknown): Permission {
  const p = object(raw, 'permissions[]');
  const resource = p.resource as Permission['resource'];
  const access = p.access as Permission['access'];
  if (!AUTH_RESOURCES.includes(resource))
    throw new Malformed(`unknown resource ${String(resource)}`);
  if (!AUTH_ACCESSES.includes(access)) throw new Malformed(`unknown access ${String(access)}`);
  return { resource, prefix: text(p.prefix, 'prefix'), access };
}

function parseCompare(raw: unknown): Compare {
  const compare = object(raw, 'compare[]');
  if (compare.lock !== undefined) {
    return { lock: key(compare.lock, 'lock'), token: count(compare.token, 'token') };
  }
  const target = compare.target as CompareTarget;
  const op = compare.op as CompareOp;
  if (!COMPARE_TARGETS.includes(target))
    throw new Malformed(`unknown compare target ${String(target)}`);
  if (!COMPARE_OPS.includes(op)) throw new Malformed(`unknown compare op ${String(op)}`);
  const value = compare.value;
  const valueOk =
    target === 'value' || target === 'lease'
      ? value === null || (typeof value === 'string' && isWellFormed(value))
      : Number.isSafeInteger(value) && (value as number) >= 0;
  if (!valueOk) throw new Malformed(`compare value does not suit target ${target}`);
  return {
    key: key(compare.key, 'compare key'),
    target,
    op,
    value: value as string | number | null,
  };
}

function parseOp(raw: unknown): TxnOp {
  const op = object(raw, 'op');
  switch (op.op) {
    case 'put':
      return withOptional(
        { op: 'put', key: key(op.key, 'key'), value: text(op.value, 'value') },
        { lease: op.lease === undefined ? undefined : leaseId(op.lease) },
      );
    case 'get':
    case 'delete': {
      const prefix = optionalBoolean(op.prefix, 'prefix');
      return withOptional(
        { op: op.op, key: prefix ? text(op.key, 'key') : key(op.key, 'key') },
        { prefix: prefix || undefined },
      );
    }
    default:
      throw new Malformed(`unknown txn op ${JSON.stringify(op.op)}`);
  }
}

// ---- field validators: return the typed value or throw Malformed ------------

function object(raw: unknown, what: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Malformed(`${what} must be an object`);
  }
  return raw as Record<string, unknown>;
}

function array(raw: unknown, what: string): unknown[] {
  if (!Array.isArray(raw)) throw new Malformed(`${what} must be an array`);
  return raw;
}

/** A string that survives UTF-8 (no lone surrogates). */
function text(raw: unknown, what: string): string {
  if (typeof raw !== 'string' || !isWellFormed(raw)) {
    throw new Malformed(`${what} must be a well-formed string`);
  }
  return raw;
}

/** A non-empty key. (Only a prefix may be empty: it means every key.) */
function key(raw: unknown, what: string): string {
  const value = text(raw, what);
  if (value === '') throw new Malformed(`${what} must not be empty`);
  return value;
}

function leaseId(raw: unknown): string {
  const id = key(raw, 'lease id');
  if (id.length > LEASE_ID_LENGTH_MAX) throw new Malformed('lease id is too long');
  return id;
}

function anonymousFlag(raw: unknown): true {
  if (raw !== true) throw new Malformed('anonymous must be true when present');
  return true;
}

function authName(raw: unknown, what: string): string {
  if (typeof raw !== 'string' || !AUTH_NAME_PATTERN.test(raw)) {
    throw new Malformed(`${what} must be 1 to 128 printable ASCII characters`);
  }
  return raw;
}

/** A non-negative safe integer. */
function count(raw: unknown, what: string): number {
  if (!Number.isSafeInteger(raw) || (raw as number) < 0) {
    throw new Malformed(`${what} must be a non-negative integer`);
  }
  return raw as number;
}

function optionalBoolean(raw: unknown, what: string): boolean {
  if (raw === undefined) return false;
  if (typeof raw !== 'boolean') throw new Malformed(`${what} must be a boolean`);
  return raw;
}

/** Adds the defined optional fields, so decoded commands carry no `undefined` properties. */
function withOptional<T extends object>(required: T, optional: Record<string, unknown>): T {
  const result: Record<string, unknown> = { ...(required as Record<string, unknown>) };
  for (const [name, value] of Object.entries(optional)) {
    if (value !== undefined) result[name] = value;
  }
  return result as T;
}
