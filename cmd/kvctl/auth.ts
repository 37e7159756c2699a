/**
 * kvctl user|role|auth — users, roles and authentication on/off, named like
 * etcdctl's. Root only once authentication is enabled (except `auth status`).
 * Grants and revokes are read-modify-write (see AuthApi in src/client).
 */
import { Argument, type Command, Option } from 'commander';
import {
  type AuthChange,
  type Client,
  type Permission,
  type PermissionAccess,
  type PermissionResource,
  RaftkvError,
  type Role,
  type User,
} from '../../src/client/index.js';
import { type CommandContext, EXIT_FAILED, EXIT_OK } from './common.js';
import { askSecret, CredentialsError, newPassword, passwordFromStdin } from './credentials.js';
import { fields, type Printer, table } from './printer.js';

const RESOURCES: PermissionResource[] = ['kv', 'registry', 'locks', 'elections'];
const ACCESSES: PermissionAccess[] = ['read', 'write', 'readwrite'];

const rolesText = (roles: string[]) => (roles.length ? roles.join(',') : '(none)');
const prefixText = (prefix: string) => (prefix === '' ? '(all)' : prefix);

function permissionsTable(permissions: Permission[]): string {
  if (permissions.length === 0) return '(no permissions)';
  return table(
    ['RESOURCE', 'PREFIX', 'ACCESS'],
    permissions.map((p) => [p.resource, prefixText(p.prefix), p.access]),
  );
}

function userFields(u: User): string {
  return fields([
    ['name', u.name],
    ['roles', rolesText(u.roles)],
  ]);
}

/** A user or role that should not exist yet (etcdctl's `add` refuses to overwrite). */
async function refuseExisting(
  kind: 'user' | 'role',
  name: string,
  get: () => Promise<unknown>,
): Promise<void> {
  try {
    await get();
  } catch (err) {
    if (err instanceof RaftkvError && err.status === 404) return;
    throw err;
  }
  throw new RaftkvError(
    'invalid_request',
    kind === 'user'
      ? `user "${name}" already exists (kvctl user passwd or user grant-role change it)`
      : `role "${name}" already exists (kvctl role grant-permission changes it)`,
  );
}

/**
 * Prints a grant's or revoke's outcome. A revoke of something not held exits
 * 1 (likely a mistyped name or prefix); a grant of something held exits 0.
 */
function showChange<T>(
  out: Printer,
  change: AuthChange<T>,
  how: 'grant' | 'revoke',
  done: string,
  same: string,
): number {
  out.show({ changed: change.changed, ...change.value }, () => (change.changed ? done : same));
  return !change.changed && how === 'revoke' ? EXIT_FAILED : EXIT_OK;
}

function permissionOf(access: string, o: { prefix: string; resource: string }): Permission {
  return {
    resource: o.resource as PermissionResource,
    prefix: o.prefix,
    access: access as PermissionAccess,
  };
}

function permissionOptions(cmd: Command): Command {
  return cmd
    .argument('<role>')
    .addArgument(new Argument('<access>', ACCESSES.join('|')).choices(ACCESSES))
    .requiredOption('--prefix <prefix>', 'keys (or names) starting with this; "" for all')
    .addOption(
      new Option('--resource <resource>', 'what the permission covers')
        .choices(RESOURCES)
        .default('kv'),
    );
}

/**
 * The password `user add` or `user passwd` sets: --password, --password-stdin,
 * or typed twice on the terminal; undefined for `--no-password`.
 */
async function passwordOption(
  name: string,
  o: { password?: string | false; passwordStdin?: boolean },
  hint: string,
): Promise<string | undefined> {
  if (o.passwordStdin) {
    if (o.password !== undefined)
      throw new CredentialsError('--password-stdin cannot go with --password or --no-password');
    return passwordFromStdin();
  }
  if (o.password === false) return undefined;
  return newPassword(`user ${name}`, o.password, askSecret, hint);
}

/** Adds the `user`, `role` and `auth` command groups to kvctl. */
export function register(program: Command, ctx: CommandContext): void {
  addUserCommands(program, ctx);
  addRoleCommands(program, ctx);
  addAuthGroup(program, ctx);
}

function addUserCommands(program: Command, ctx: CommandContext): void {
  const user = program
    .command('user')
    .description('add, inspect and delete users; grant and revoke their roles (root only)');

  user
    .command('add')
    .description('add a user (asks for its password on the terminal unless given)')
    .argument('<name>')
    .option(
      '--password <password>',
      'its password (visible to other local users: prefer the prompt or --password-stdin)',
    )
    .option('--password-stdin', 'read its password from the first line of stdin')
    .option(
      '--no-password',
      'no password: the user authenticates with a client certificate (CN = name)',
    )
    .option('--roles <roles>', 'comma-separated roles to give it')
    .action((name: string, o, cmd: Command) =>
      ctx.run(cmd, async (client, out, deadline) => {
        await refuseExisting('user', name, () => client.auth.getUser(name));
        // Typing (or piping) a password is not the cluster's time.
        const password = await deadline.outside(() =>
          passwordOption(
            name,
            o,
            'use --password-stdin, --password PASSWORD, or --no-password for a certificate-only user',
          ),
        );
        const roles =
          o.roles === undefined
            ? undefined
            : String(o.roles)
                .split(',')
                .map((r) => r.trim())
                .filter(Boolean);
        const res = await client.auth.putUser(name, {
          ...(password !== undefined ? { password } : {}),
          ...(roles !== undefined ? { roles } : {}),
        });
        out.show(
          res,
          () => `user ${res.name} added${password === undefined ? ' (no password)' : ''}`,
        );
        return EXIT_OK;
      }),
    );

  user
    .command('get')
    .description("a user's roles")
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const u = await client.auth.getUser(name);
        out.show(u, () => userFields(u));
        return EXIT_OK;
      }),
    );

  user
    .command('list')
    .alias('ls')
    .description('list the users')
    .action((_o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const users = await client.auth.listUsers();
        out.show({ users }, () =>
          users.length
            ? table(
                ['NAME', 'ROLES'],
                users.map((u) => [u.name, rolesText(u.roles)]),
              )
            : '(no users)',
        );
        return EXIT_OK;
      }),
    );

  user
    .command('delete')
    .alias('del')
    .description('delete a user (its tokens stop working at once)')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        await client.auth.deleteUser(name);
        out.show({ name, deleted: true }, () => `user ${name} deleted`);
        return EXIT_OK;
      }),
    );

  user
    .command('passwd')
    .description("change a user's password (asks on the terminal unless given)")
    .argument('<name>')
    .option(
      '--password <password>',
      'the new password (visible to other local users: prefer the prompt or --password-stdin)',
    )
    .option('--password-stdin', 'read the new password from the first line of stdin')
    .action((name: string, o, cmd: Command) =>
      ctx.run(cmd, async (client, out, deadline) => {
        const password = await deadline.outside(() =>
          passwordOption(name, o, 'use --password-stdin or --password PASSWORD'),
        );
        if (password === undefined) throw new CredentialsError('passwd: a password is needed');
        const res = await client.auth.changePassword(name, password);
        out.show({ name: res.name, roles: res.roles }, () => `password of user ${name} changed`);
        return EXIT_OK;
      }),
    );

  user
    .command('grant-role')
    .description('give a user a role (read-modify-write of its role list)')
    .argument('<user>')
    .argument('<role>')
    .action((name: string, role: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) =>
        showChange(
          out,
          await client.auth.grantRole(name, role),
          'grant',
          `role ${role} granted to user ${name}`,
          `user ${name} already has role ${role}`,
        ),
      ),
    );

  user
    .command('revoke-role')
    .description('take a role from a user (read-modify-write of its role list)')
    .argument('<user>')
    .argument('<role>')
    .action((name: string, role: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) =>
        showChange(
          out,
          await client.auth.revokeRole(name, role),
          'revoke',
          `role ${role} revoked from user ${name}`,
          `user ${name} did not have role ${role}: nothing changed`,
        ),
      ),
    );
}

function addRoleCommands(program: Command, ctx: CommandContext): void {
  const role = program
    .command('role')
    .description('add, inspect and delete roles; grant and revoke permissions (root only)');

  role
    .command('add')
    .description('add a role with no permissions')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        await refuseExisting('role', name, () => client.auth.getRole(name));
        const res = await client.auth.putRole(name, []);
        out.show(res, () => `role ${res.name} added`);
        return EXIT_OK;
      }),
    );

  role
    .command('get')
    .description("a role's permissions")
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const r = await client.auth.getRole(name);
        out.show(r, () => `role ${r.name}\n${permissionsTable(r.permissions)}`);
        return EXIT_OK;
      }),
    );

  role
    .command('list')
    .alias('ls')
    .description('list the roles')
    .action((_o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const roles = await client.auth.listRoles();
        out.show({ roles }, () =>
          roles.length
            ? table(
                ['NAME', 'PERMISSIONS'],
                roles.map((r: Role) => [
                  r.name,
                  r.permissions.length
                    ? r.permissions
                        .map((p) => `${p.resource}:${prefixText(p.prefix)}:${p.access}`)
                        .join(' ')
                    : '(none)',
                ]),
              )
            : '(no roles)',
        );
        return EXIT_OK;
      }),
    );

  role
    .command('delete')
    .alias('del')
    .description('delete a role')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        await client.auth.deleteRole(name);
        out.show({ name, deleted: true }, () => `role ${name} deleted`);
        return EXIT_OK;
      }),
    );

  permissionOptions(
    role
      .command('grant-permission')
      .description(
        'give a role read, write or readwrite on a prefix (merged with what it has on that prefix)',
      ),
  ).action((name: string, access: string, o, cmd: Command) =>
    ctx.run(cmd, async (client, out) => {
      const p = permissionOf(access, o);
      const change = await client.auth.grantPermission(name, p);
      const what = `${p.access} on ${p.resource} ${prefixText(p.prefix)}`;
      return showChange(
        out,
        change,
        'grant',
        `role ${name}: granted ${what}\n${permissionsTable(change.value.permissions)}`,
        `role ${name} already has ${what}`,
      );
    }),
  );

  permissionOptions(
    role
      .command('revoke-permission')
      .description(
        'take read, write or readwrite on exactly this prefix away from a role (others stay)',
      ),
  ).action((name: string, access: string, o, cmd: Command) =>
    ctx.run(cmd, async (client, out) => {
      const p = permissionOf(access, o);
      const change = await client.auth.revokePermission(name, p);
      const what = `${p.access} on ${p.resource} ${prefixText(p.prefix)}`;
      return showChange(
        out,
        change,
        'revoke',
        `role ${name}: revoked ${what}\n${permissionsTable(change.value.permissions)}`,
        `role ${name} has no ${what}: nothing changed`,
      );
    }),
  );
}

function addAuthGroup(program: Command, ctx: CommandContext): void {
  const auth = program
    .command('auth')
    .description('turn authentication on or off, or see whether it is on');

  const simple = (
    name: string,
    description: string,
    call: (client: Client) => Promise<{ enabled: boolean }>,
    text: (enabled: boolean) => string,
  ) =>
    auth
      .command(name)
      .description(description)
      .action((_o, cmd: Command) =>
        ctx.run(cmd, async (client, out) => {
          const res = await call(client);
          out.show(res, () => text(res.enabled));
          return EXIT_OK;
        }),
      );

  simple(
    'enable',
    'turn authentication on (needs a user "root" holding the role "root")',
    (c) => c.auth.enable(),
    () => 'authentication enabled',
  );
  simple(
    'disable',
    'turn authentication off (root only)',
    (c) => c.auth.disable(),
    () => 'authentication disabled',
  );
  simple(
    'status',
    'whether authentication is on (needs no credentials)',
    (c) => c.auth.status(),
    (enabled) => `authentication ${enabled ? 'enabled' : 'disabled'}`,
  );
}
