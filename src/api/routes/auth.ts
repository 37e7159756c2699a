import type { FastifyInstance, FastifyReply } from 'fastify';
import { AUTH_NAME_PATTERN, type Permission } from '../../kv/auth.js';
import type { ErrorResult } from '../../kv/results.js';
import { ApiError, sendError, wireCode } from '../errors.js';
import { type Query, rejectUnknown, writeOptionsOf } from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService } from '../service.js';

const PERMISSIONS_MAX = 1000;
const ROLES_MAX = 100;

const name = { type: 'string', minLength: 1, maxLength: 128 } as const;

const userBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    password: { type: 'string', minLength: 1, maxLength: 1024 },
    roles: { type: 'array', maxItems: ROLES_MAX, items: name },
  },
} as const;

const roleBody = {
  type: 'object',
  required: ['permissions'],
  additionalProperties: false,
  properties: {
    permissions: {
      type: 'array',
      maxItems: PERMISSIONS_MAX,
      items: {
        type: 'object',
        required: ['resource', 'prefix', 'access'],
        additionalProperties: false,
        properties: {
          resource: { enum: ['kv', 'registry', 'locks', 'elections'] },
          prefix: { type: 'string', maxLength: 4096 },
          access: { enum: ['read', 'write', 'readwrite'] },
        },
      },
    },
  },
} as const;

const tokenBody = {
  type: 'object',
  required: ['name', 'password'],
  additionalProperties: false,
  properties: { name, password: { type: 'string', maxLength: 1024 } },
} as const;

function nameParam(params: unknown, what: 'user' | 'role'): string {
  const value = (params as { name?: string }).name ?? '';
  if (!AUTH_NAME_PATTERN.test(value))
    throw new ApiError(
      'invalid_request',
      `a ${what} name is 1 to 128 printable ASCII characters, without leading or trailing spaces`,
    );
  return value;
}

function sendResultError(reply: FastifyReply, r: ErrorResult): FastifyReply {
  return sendError(reply, wireCode(r.code), r.message, {
    revision: r.revision,
  });
}

/** API.md "Security": users, roles, enabling auth, and tokens. Everything but status and token is root's. */
export function authRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    const status = routeDoc('auth', 'Whether authentication is enabled');
    app.get('/v1/auth/status', { schema: status, config: { access: 'public' } }, async (req) => {
      rejectUnknown(req.query as Query, []);
      return service.authStatus();
    });

    app.post(
      '/v1/auth/token',
      {
        schema: {
          ...routeDoc('auth', 'Get a token for a name and password', {
            description:
              'A wrong name or password is 401 `unauthenticated` (the same for both); repeated failures for one name are 429.',
          }),
          body: tokenBody,
        },
        config: { access: 'public' },
      },
      async (req) => {
        rejectUnknown(req.query as Query, []);
        const { name: user, password } = req.body as { name: string; password: string };
        return service.issueToken(user, password);
      },
    );

    const enable = routeDoc(
      'auth',
      'Enable authentication (a user root with the role root must exist)',
    );
    app.post(
      '/v1/auth/enable',
      { schema: enable, config: { access: 'root' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const result = await service.authEnable(writeOptionsOf(req, service));
        if (!result.ok) return sendResultError(reply, result);
        return { enabled: true };
      },
    );

    const disable = routeDoc('auth', 'Disable authentication');
    app.post(
      '/v1/auth/disable',
      { schema: disable, config: { access: 'root' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const result = await service.authDisable(writeOptionsOf(req, service));
        if (!result.ok) return sendResultError(reply, result);
        return { enabled: false };
      },
    );

    // ---- users

    app.put(
      '/v1/auth/users/:name',
      {
        schema: {
          ...routeDoc('auth', 'Create or update a user', {
            description: 'Fields left out keep their value. Passwords are never returned.',
            successStatus: [201, 200],
          }),
          body: userBody,
        },
        config: { access: 'root' },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const user = nameParam(req.params, 'user');
        const body = (req.body ?? {}) as { password?: string; roles?: string[] };
        for (const role of body.roles ?? []) {
          if (!AUTH_NAME_PATTERN.test(role))
            throw new ApiError('invalid_request', `"${role}" is not a valid role name`);
        }
        const result = await service.userPut(user, body, writeOptionsOf(req, service));
        if (!result.ok) return sendResultError(reply, result);
        return reply.code(result.created ? 201 : 200).send({
          name: result.user.name,
          roles: result.user.roles,
        });
      },
    );

    const users = routeDoc('auth', 'List users');
    app.get('/v1/auth/users', { schema: users, config: { access: 'root' } }, async (req) => {
      rejectUnknown(req.query as Query, []);
      const auth = await service.authRead(service.requestDeadline());
      return { users: auth.allUsers().map((u) => ({ name: u.name, roles: u.roles })) };
    });

    const user = routeDoc('auth', 'A user and its roles');
    app.get(
      '/v1/auth/users/:name',
      { schema: user, config: { access: 'root' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const user = nameParam(req.params, 'user');
        const found = (await service.authRead(service.requestDeadline())).user(user);
        if (found === undefined)
          return sendError(reply, 'user_not_found', `user ${user} does not exist`);
        return { name: found.name, roles: found.roles };
      },
    );

    const deleteUser = routeDoc('auth', 'Delete a user (its tokens stop working at once)');
    app.delete(
      '/v1/auth/users/:name',
      { schema: deleteUser, config: { access: 'root' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const user = nameParam(req.params, 'user');
        const result = await service.userDelete(user, writeOptionsOf(req, service));
        if (!result.ok) return sendResultError(reply, result);
        return { name: user, deleted: true };
      },
    );

    // ---- roles

    app.put(
      '/v1/auth/roles/:name',
      {
        schema: {
          ...routeDoc('auth', "Create or replace a role's permissions", {
            description: 'The built-in role `root` cannot be changed.',
            successStatus: [201, 200],
          }),
          body: roleBody,
        },
        config: { access: 'root' },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const role = nameParam(req.params, 'role');
        const { permissions } = req.body as { permissions: Permission[] };
        const result = await service.rolePut(role, permissions, writeOptionsOf(req, service));
        if (!result.ok) return sendResultError(reply, result);
        return reply
          .code(result.created ? 201 : 200)
          .send({ name: result.role.name, permissions: result.role.permissions });
      },
    );

    const roles = routeDoc('auth', 'List roles');
    app.get('/v1/auth/roles', { schema: roles, config: { access: 'root' } }, async (req) => {
      rejectUnknown(req.query as Query, []);
      const auth = await service.authRead(service.requestDeadline());
      return {
        roles: auth.allRoles().map((r) => ({ name: r.name, permissions: r.permissions })),
      };
    });

    const role = routeDoc('auth', 'A role and its permissions');
    app.get(
      '/v1/auth/roles/:name',
      { schema: role, config: { access: 'root' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const role = nameParam(req.params, 'role');
        const found = (await service.authRead(service.requestDeadline())).role(role);
        if (found === undefined)
          return sendError(reply, 'role_not_found', `role ${role} does not exist`);
        return { name: found.name, permissions: found.permissions };
      },
    );

    const deleteRole = routeDoc('auth', 'Delete a role (root cannot be deleted)');
    app.delete(
      '/v1/auth/roles/:name',
      { schema: deleteRole, config: { access: 'root' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const role = nameParam(req.params, 'role');
        const result = await service.roleDelete(role, writeOptionsOf(req, service));
        if (!result.ok) return sendResultError(reply, result);
        return { name: role, deleted: true };
      },
    );
  };
}
