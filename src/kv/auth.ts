import { assert } from './errors.js';
import { compareKeys } from './key-order.js';
import type { MutationLog } from './mutations.js';
import { AUTH_META_RECORD_KEY, authRoleRecordKey, authUserRecordKey } from './record-keys.js';
import { utf8Decode } from './text.js';

/**
 * Users, roles and permissions (API.md "Security"), as replicated state: they
 * travel in snapshots and backups like every other record. Pure data and pure
 * checks; hashing passwords and signing tokens are the server's job (it
 * proposes the hash and the signing key, so every replica stores the same bytes).
 */

export type AuthResource = 'kv' | 'registry' | 'locks' | 'elections';
export type AuthAccess = 'read' | 'write' | 'readwrite';

export const AUTH_RESOURCES: readonly AuthResource[] = ['kv', 'registry', 'locks', 'elections'];
export const AUTH_ACCESSES: readonly AuthAccess[] = ['read', 'write', 'readwrite'];

/** Keys (or names) of `resource` that start with `prefix`; '' is the whole resource. */
export interface Permission {
  readonly resource: AuthResource;
  readonly prefix: string;
  readonly access: AuthAccess;
}

export interface AuthUser {
  readonly name: string;
  /** The server's salted slow hash (opaque here), or null for a user who logs in by certificate only. */
  readonly passwordHash: string | null;
  readonly roles: readonly string[];
  /**
   * The auth revision of this user's last change of password or roles (or its
   * creation). A token carries it: a token minted before the change no longer matches.
   */
  readonly revision: number;
}

export interface AuthRole {
  readonly name: string;
  readonly permissions: readonly Permission[];
}

/** What one request needs: `access` on `key` of `resource` (for a range, `key` is its prefix). */
export interface AccessNeed {
  readonly resource: AuthResource;
  readonly key: string;
  readonly access: 'read' | 'write';
}

/** User and role names: 1 to 128 printable ASCII characters, no leading or trailing space. */
export const AUTH_NAME_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;

/** The built-in role that may do everything; it cannot be changed or deleted. */
export const ROOT_ROLE = 'root';
/** The user that must exist, holding the root role, before auth can be enabled. */
export const ROOT_USER = 'root';

interface AuthMeta {
  readonly enabled: boolean;
  /** Increases with every change of users, roles or the enabled flag. */
  readonly revision: number;
  /** Token-signing key (base64), replaced at every enable so earlier tokens stop working. */
  readonly signingKey: string | null;
}

/** The auth state machine's part: records `a/meta`, `a/u/<name>`, `a/r/<name>`. */
export class AuthTable {
  private readonly users = new Map<string, AuthUser>();
  private readonly roles = new Map<string, AuthRole>();
  private meta: AuthMeta = { enabled: false, revision: 0, signingKey: null };

  constructor(private readonly log: MutationLog) {}

  get enabled(): boolean {
    return this.meta.enabled;
  }

  get revision(): number {
    return this.meta.revision;
  }

  get signingKey(): string | null {
    return this.meta.signingKey;
  }

  user(name: string): AuthUser | undefined {
    return this.users.get(name);
  }

  role(name: string): AuthRole | undefined {
    if (name === ROOT_ROLE) return { name: ROOT_ROLE, permissions: [] };
    return this.roles.get(name);
  }

  /** Every user, in name order. */
  allUsers(): AuthUser[] {
    return [...this.users.values()].sort((a, b) => compareKeys(a.name, b.name));
  }

  /** Every role (root first, then in name order). */
  allRoles(): AuthRole[] {
    const roles = [...this.roles.values()].sort((a, b) => compareKeys(a.name, b.name));
    return [{ name: ROOT_ROLE, permissions: [] }, ...roles];
  }

  isRoot(name: string): boolean {
    return this.users.get(name)?.roles.includes(ROOT_ROLE) ?? false;
  }

  /**
   * Whether user `name` may do what `need` says. A permission covers a key when
   * the key starts with the permission's prefix; for a range the key is the
   * range's prefix, so only a permission whose prefix is a prefix of it covers
   * every key the range can return.
   */
  permits(name: string, need: AccessNeed): boolean {
    const user = this.users.get(name);
    if (user === undefined) return false;
    for (const roleName of user.roles) {
      if (roleName === ROOT_ROLE) return true;
      const role = this.roles.get(roleName);
      if (role === undefined) continue;
      for (const p of role.permissions) {
        if (p.resource !== need.resource || !need.key.startsWith(p.prefix)) continue;
        if (p.access === 'readwrite' || p.access === need.access) return true;
      }
    }
    return false;
  }

  // ---- changes (called by the state machine's apply) -------------------------

  /** Creates or updates a user; undefined fields keep their value. Returns whether it was new. */
  putUser(
    name: string,
    change: { passwordHash?: string | null; roles?: readonly string[] },
  ): { created: boolean; user: AuthUser } {
    const current = this.users.get(name);
    const revision = this.bump();
    const credentialsChanged =
      current === undefined ||
      (change.passwordHash !== undefined && change.passwordHash !== current.passwordHash) ||
      (change.roles !== undefined && !sameList(change.roles, current.roles));
    const user: AuthUser = {
      name,
      passwordHash:
        change.passwordHash !== undefined ? change.passwordHash : (current?.passwordHash ?? null),
      roles: change.roles !== undefined ? dedupe(change.roles) : (current?.roles ?? []),
      revision: credentialsChanged ? revision : current.revision,
    };
    this.setUser(user);
    return { created: current === undefined, user };
  }

  deleteUser(name: string): boolean {
    if (!this.users.delete(name)) return false;
    this.bump();
    this.log.del(authUserRecordKey(name));
    return true;
  }

  /** Creates or replaces a role's permissions. Returns whether it was new. */
  putRole(name: string, permissions: readonly Permission[]): boolean {
    assert(name !== ROOT_ROLE, 'the root role cannot be changed');
    const created = !this.roles.has(name);
    this.bump();
    const role: AuthRole = { name, permissions: permissions.map((p) => ({ ...p })) };
    this.roles.set(name, role);
    this.log.put(authRoleRecordKey(name), JSON.stringify(role));
    return created;
  }

  /** Deletes a role and takes it from every user holding it (their tokens stop working). */
  deleteRole(name: string): boolean {
    if (!this.roles.delete(name)) return false;
    const revision = this.bump();
    this.log.del(authRoleRecordKey(name));
    for (const user of this.users.values()) {
      if (!user.roles.includes(name)) continue;
      this.setUser({ ...user, roles: user.roles.filter((r) => r !== name), revision });
    }
    return true;
  }

  enable(signingKey: string): void {
    this.bump();
    this.setMeta({ ...this.meta, enabled: true, signingKey });
  }

  disable(): void {
    this.bump();
    this.setMeta({ ...this.meta, enabled: false });
  }

  *records(): Generator<[string, string], void, undefined> {
    // A state that never touched auth has no auth records, as before auth existed.
    if (this.meta.revision > 0) yield [AUTH_META_RECORD_KEY, JSON.stringify(this.meta)];
    for (const user of this.users.values()) yield [authUserRecordKey(user.name), encode(user)];
    for (const role of this.roles.values()) yield [authRoleRecordKey(role.name), encode(role)];
  }

  /** Rebuilds the table from its records (meta, users, roles in any order). */
  static fromRecords(
    log: MutationLog,
    meta: Uint8Array | undefined,
    users: Iterable<Uint8Array>,
    roles: Iterable<Uint8Array>,
  ): AuthTable {
    const table = new AuthTable(log);
    if (meta !== undefined) table.meta = decodeMeta(meta);
    for (const bytes of users) {
      const user = decodeUser(bytes);
      table.users.set(user.name, user);
    }
    for (const bytes of roles) {
      const role = decodeRole(bytes);
      table.roles.set(role.name, role);
    }
    return table;
  }

  private bump(): number {
    const revision = this.meta.revision + 1;
    this.setMeta({ ...this.meta, revision });
    return revision;
  }

  private setMeta(meta: AuthMeta): void {
    this.meta = meta;
    this.log.put(AUTH_META_RECORD_KEY, JSON.stringify(meta));
  }

  private setUser(user: AuthUser): void {
    this.users.set(user.name, user);
    this.log.put(authUserRecordKey(user.name), encode(user));
  }
}

function encode(value: AuthUser | AuthRole): string {
  return JSON.stringify(value);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  const x = dedupe(a);
  const y = dedupe(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Role lists are sets: kept sorted and without repeats so equal sets compare equal. */
function dedupe(list: readonly string[]): string[] {
  return [...new Set(list)].sort(compareKeys);
}

function decodeMeta(bytes: Uint8Array): AuthMeta {
  const meta = JSON.parse(utf8Decode(bytes)) as AuthMeta;
  assert(
    typeof meta.enabled === 'boolean' &&
      Number.isSafeInteger(meta.revision) &&
      (meta.signingKey === null || typeof meta.signingKey === 'string'),
    'auth meta record: malformed',
  );
  return meta;
}

function decodeUser(bytes: Uint8Array): AuthUser {
  const user = JSON.parse(utf8Decode(bytes)) as AuthUser;
  assert(
    typeof user.name === 'string' &&
      (user.passwordHash === null || typeof user.passwordHash === 'string') &&
      Array.isArray(user.roles) &&
      user.roles.every((r) => typeof r === 'string') &&
      Number.isSafeInteger(user.revision),
    'auth user record: malformed',
  );
  return user;
}

function decodeRole(bytes: Uint8Array): AuthRole {
  const role = JSON.parse(utf8Decode(bytes)) as AuthRole;
  assert(
    typeof role.name === 'string' &&
      Array.isArray(role.permissions) &&
      role.permissions.every(
        (p) =>
          AUTH_RESOURCES.includes(p.resource) &&
          typeof p.prefix === 'string' &&
          AUTH_ACCESSES.includes(p.access),
      ),
    'auth role record: malformed',
  );
  return role;
}
