import type { TokenResponse } from './credentials.js';
import { RaftkvError, UnauthenticatedError } from './errors.js';
import type { CallSpec, Transport } from './transport.js';
import type {
  AuthChange,
  AuthStatus,
  Created,
  Permission,
  PermissionAccess,
  PermissionResource,
  PutUserOptions,
  Role,
  User,
  WriteOptions,
} from './types.js';

type Signal = { signal?: AbortSignal };

const RESOURCES: readonly PermissionResource[] = ['kv', 'registry', 'locks', 'elections'];
const ACCESSES: readonly PermissionAccess[] = ['read', 'write', 'readwrite'];

/** A user or role name as one path segment (`/` included, so it cannot reach another route). */
function segment(name: string): string {
  if (typeof name !== 'string' || name === '')
    throw new RaftkvError('invalid_request', 'a user or role name must be a non-empty string');
  try {
    return encodeURIComponent(name);
  } catch {
    throw new RaftkvError('invalid_request', `not valid Unicode: ${JSON.stringify(name)}`);
  }
}

/**
 * POST /v1/auth/token without credentials: `{token, ttl}`. A wrong name or
 * password is an UnauthenticatedError that says so; 429 (too many failures
 * for this name) is thrown at once as TooManyRequestsError with
 * `retryAfterMs`, not retried, so the client does not add to the failures.
 */
export async function requestToken(
  transport: Transport,
  name: string,
  password: string,
  options: Signal = {},
): Promise<TokenResponse> {
  try {
    const res = await transport.call<TokenResponse>({
      method: 'POST',
      path: '/v1/auth/token',
      body: { name, password },
      anonymous: true,
      retrySafe: true,
      retryThrottled: false,
      signal: options.signal,
    });
    return res.body;
  } catch (err) {
    if (err instanceof RaftkvError && err.status === 401)
      throw new UnauthenticatedError(
        `authenticating as "${name}" failed: wrong user name or password (${err.message})`,
        { status: 401, body: err.body, ...(err.endpoint ? { endpoint: err.endpoint } : {}) },
      );
    throw err;
  }
}

/**
 * Users, roles and authentication on/off (API.md "Security"); reached as
 * `client.auth`. Every call except status() and token() needs the `root` role
 * once authentication is enabled.
 *
 * grantRole/revokeRole and grantPermission/revokePermission are
 * read-modify-write: they read the user (role), change the list, and PUT the
 * whole list back. The API has no compare-and-swap for users and roles, so
 * two administrators changing the same user at the same moment can lose one
 * change; do such changes from one place, or check with getUser/getRole.
 */
export class AuthApi {
  constructor(private readonly transport: Transport) {}

  // ---------------------------------------------------------------- users

  /**
   * Creates user `name` (201, `created: true`) or updates it (200); fields
   * left out keep their value. A user without a password can only
   * authenticate with a client certificate whose Common Name is `name`.
   */
  async putUser(name: string, options: PutUserOptions = {}): Promise<Created<User>> {
    const body: { password?: string; roles?: string[] } = {};
    if (options.password !== undefined) body.password = options.password;
    if (options.roles !== undefined) body.roles = [...options.roles];
    const res = await this.write<User>('PUT', `/v1/auth/users/${segment(name)}`, body, options);
    return { ...res.body, created: res.status === 201 };
  }

  /** Throws RaftkvError (404) when there is no such user. */
  async getUser(name: string, options: Signal = {}): Promise<User> {
    return this.read<User>(`/v1/auth/users/${segment(name)}`, options);
  }

  async listUsers(options: Signal = {}): Promise<User[]> {
    return (await this.read<{ users: User[] }>('/v1/auth/users', options)).users;
  }

  /** Deletes the user; its tokens stop working at once. */
  async deleteUser(name: string, options: WriteOptions = {}): Promise<unknown> {
    return (await this.write('DELETE', `/v1/auth/users/${segment(name)}`, undefined, options)).body;
  }

  /** Sets a new password (the user's tokens stop working). */
  async changePassword(
    name: string,
    password: string,
    options: WriteOptions = {},
  ): Promise<Created<User>> {
    return this.putUser(name, { ...options, password });
  }

  /** Adds `role` to the user's roles (read-modify-write; see the class comment). */
  async grantRole(
    user: string,
    role: string,
    options: WriteOptions = {},
  ): Promise<AuthChange<User>> {
    const current = await this.getUser(user, options);
    if (current.roles.includes(role)) return { changed: false, value: current };
    const roles = [...current.roles, role];
    const written = await this.putUser(user, { ...options, roles });
    return { changed: true, value: { name: written.name, roles: written.roles } };
  }

  /** Removes `role` from the user's roles (read-modify-write; see the class comment). */
  async revokeRole(
    user: string,
    role: string,
    options: WriteOptions = {},
  ): Promise<AuthChange<User>> {
    const current = await this.getUser(user, options);
    if (!current.roles.includes(role)) return { changed: false, value: current };
    const roles = current.roles.filter((r) => r !== role);
    const written = await this.putUser(user, { ...options, roles });
    return { changed: true, value: { name: written.name, roles: written.roles } };
  }

  // ---------------------------------------------------------------- roles

  /** Creates role `name` (`created: true`) or replaces its permissions. */
  async putRole(
    name: string,
    permissions: Permission[],
    options: WriteOptions = {},
  ): Promise<Created<Role>> {
    for (const p of permissions) checkPermission(p);
    const res = await this.write<Role>(
      'PUT',
      `/v1/auth/roles/${segment(name)}`,
      {
        permissions: permissions.map(({ resource, prefix, access }) => ({
          resource,
          prefix,
          access,
        })),
      },
      options,
    );
    return { ...res.body, created: res.status === 201 };
  }

  async getRole(name: string, options: Signal = {}): Promise<Role> {
    return this.read<Role>(`/v1/auth/roles/${segment(name)}`, options);
  }

  async listRoles(options: Signal = {}): Promise<Role[]> {
    const body = await this.read<{ roles: Role[] } | Role[]>('/v1/auth/roles', options);
    return Array.isArray(body) ? body : body.roles;
  }

  async deleteRole(name: string, options: WriteOptions = {}): Promise<unknown> {
    return (await this.write('DELETE', `/v1/auth/roles/${segment(name)}`, undefined, options)).body;
  }

  /**
   * Gives the role `access` on `prefix` of `resource`, merged with what it
   * has on that exact prefix (read + write = readwrite). Read-modify-write.
   */
  async grantPermission(
    role: string,
    permission: Permission,
    options: WriteOptions = {},
  ): Promise<AuthChange<Role>> {
    checkPermission(permission);
    const current = await this.getRole(role, options);
    const permissions = mergePermission(current.permissions, permission, 'grant');
    return this.rewrite(current, permissions, options);
  }

  /**
   * Takes `access` on exactly `prefix` of `resource` away from the role
   * (revoking `read` from `readwrite` leaves `write`). Permissions on other
   * prefixes, even overlapping ones, stay. Read-modify-write.
   */
  async revokePermission(
    role: string,
    permission: Permission,
    options: WriteOptions = {},
  ): Promise<AuthChange<Role>> {
    checkPermission(permission);
    const current = await this.getRole(role, options);
    const permissions = mergePermission(current.permissions, permission, 'revoke');
    return this.rewrite(current, permissions, options);
  }

  // ---------------------------------------------------------------- on / off

  /** 400 `invalid_request` unless a user `root` holding the role `root` exists. */
  async enable(options: WriteOptions = {}): Promise<AuthStatus> {
    await this.write('POST', '/v1/auth/enable', undefined, options);
    return { enabled: true };
  }

  /** Root only. */
  async disable(options: WriteOptions = {}): Promise<AuthStatus> {
    await this.write('POST', '/v1/auth/disable', undefined, options);
    return { enabled: false };
  }

  /** Needs no credentials. */
  async status(options: Signal = {}): Promise<AuthStatus> {
    const res = await this.transport.call<AuthStatus>({
      method: 'GET',
      path: '/v1/auth/status',
      anonymous: true,
      signal: options.signal,
    });
    return res.body;
  }

  /**
   * A token for `name` and `password`: `{token, ttl}` (ttl in seconds). A
   * Client with `auth: {name, password}` does this by itself; use it to hand
   * a token to another process (`auth: {token}`).
   */
  async token(name: string, password: string, options: Signal = {}): Promise<TokenResponse> {
    return requestToken(this.transport, name, password, options);
  }

  // ---------------------------------------------------------------- internals

  private async rewrite(
    current: Role,
    permissions: Permission[],
    options: WriteOptions,
  ): Promise<AuthChange<Role>> {
    if (samePermissions(current.permissions, permissions))
      return { changed: false, value: current };
    const written = await this.putRole(current.name, permissions, options);
    return { changed: true, value: { name: written.name, permissions: written.permissions } };
  }

  private async read<T>(path: string, options: Signal): Promise<T> {
    return (await this.transport.call<T>({ method: 'GET', path, signal: options.signal })).body;
  }

  private async write<T = unknown>(
    method: CallSpec['method'],
    path: string,
    body: unknown,
    options: WriteOptions,
  ): Promise<{ status: number; body: T }> {
    const res = await this.transport.call<T>({
      method,
      path,
      body,
      idempotencyKey: options.idempotencyKey ?? this.transport.newKey(),
      signal: options.signal,
    });
    return { status: res.status, body: res.body };
  }
}

function checkPermission(p: Permission): void {
  if (!RESOURCES.includes(p.resource))
    throw new RaftkvError(
      'invalid_request',
      `permission resource must be one of ${RESOURCES.join(', ')}, not ${JSON.stringify(p.resource)}`,
    );
  if (!ACCESSES.includes(p.access))
    throw new RaftkvError(
      'invalid_request',
      `permission access must be one of ${ACCESSES.join(', ')}, not ${JSON.stringify(p.access)}`,
    );
  if (typeof p.prefix !== 'string')
    throw new RaftkvError('invalid_request', 'permission prefix must be a string ("" for all)');
}

const bits = (access: PermissionAccess): number =>
  access === 'read' ? 1 : access === 'write' ? 2 : 3;
const accessOf = (b: number): PermissionAccess | undefined =>
  b === 1 ? 'read' : b === 2 ? 'write' : b === 3 ? 'readwrite' : undefined;

/**
 * The permissions after granting or revoking `change`: entries on the same
 * resource and exact prefix are combined into one (their access bits or'ed),
 * then `change`'s bits are added or removed there; an entry left with no
 * access is dropped. Other entries keep their order; a new one goes last.
 */
export function mergePermission(
  permissions: readonly Permission[],
  change: Permission,
  how: 'grant' | 'revoke',
): Permission[] {
  const same = (p: Permission) => p.resource === change.resource && p.prefix === change.prefix;
  let held = 0;
  for (const p of permissions) if (same(p)) held |= bits(p.access);
  const next = how === 'grant' ? held | bits(change.access) : held & ~bits(change.access);
  const out: Permission[] = [];
  let placed = false;
  for (const p of permissions) {
    if (!same(p)) {
      out.push(p);
      continue;
    }
    const access = accessOf(next);
    if (!placed && access) out.push({ resource: p.resource, prefix: p.prefix, access });
    placed = true;
  }
  const access = accessOf(next);
  if (!placed && access) out.push({ resource: change.resource, prefix: change.prefix, access });
  return out;
}

function samePermissions(a: readonly Permission[], b: readonly Permission[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (p, i) =>
        p.resource === b[i]!.resource && p.prefix === b[i]!.prefix && p.access === b[i]!.access,
    )
  );
}
