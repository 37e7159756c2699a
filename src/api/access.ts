import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyPluginCallback,
  FastifyPluginOptions,
  FastifyReply,
  FastifyRequest,
} from 'fastify';
import type { AccessNeed } from '../kv/auth.js';
import { ANONYMOUS, AuthError, type Principal, permits } from '../server/auth.js';
import { peerCertificateCommonName } from '../tls/connect.js';
import { sendError } from './errors.js';
import type { ApiService } from './service.js';

/**
 * What a request needs of its user: an access to a key or name, or the
 * ownership of a lease (API.md: only the user who granted a lease may use it).
 */
export type Need = AccessNeed | { readonly lease: string };

const NO_NEEDS: readonly Need[] = Object.freeze([]);

/**
 * Every route declares what it touches, in its options (`config: { access }`),
 * and one pair of hooks enforces it (API.md "What needs which permission"):
 * - `public`: no credentials needed (health, metrics, auth status, token);
 * - `authenticated`: any user (status, members, granting a lease);
 * - `root`: users and roles, membership, compaction, backups;
 * - a function of the parsed request giving its needs (KV, registry, locks,
 *   elections, leases).
 * A route without a declaration does not start: the server refuses to build.
 * Routes of another project's plugin get theirs from registerWithAccess.
 */
export type RouteAccess =
  | 'public'
  | 'authenticated'
  | 'root'
  | ((req: FastifyRequest) => readonly Need[] | Promise<readonly Need[]>);

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request (anonymous root while auth is disabled). Set by the access hooks. */
    principal: Principal;
    /** The request's declared needs, kept so streams can re-check them when auth changes. */
    accessNeeds: readonly Need[];
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

/** The access every route of a plugin scope gets unless it declares its own (registerWithAccess). */
const SCOPE_ACCESS = Symbol('raftkv.scopeAccess');
type ScopeWithAccess = FastifyInstance & { [SCOPE_ACCESS]?: RouteAccess };

/**
 * Registers a plugin written elsewhere, whose routes cannot carry
 * `config.access` (the reference pages of @fastify/swagger-ui and the files
 * @fastify/static serves for them), giving each of its routes `access`. Our own
 * routes declare theirs, one by one, where they are added: do not use this for them.
 */
export function registerWithAccess<Options extends FastifyPluginOptions>(
  app: FastifyInstance,
  access: RouteAccess,
  plugin: FastifyPluginCallback<Options> | FastifyPluginAsync<Options>,
  options: Options,
): void {
  app.register(async (scope) => {
    // A decoration: child scopes (the plugin's own registrations) inherit it.
    scope.decorate<RouteAccess>(SCOPE_ACCESS, access);
    await scope.register(plugin as FastifyPluginCallback<Options>, options);
  });
}

/** Installs the access hooks on `app` (before any route is added). */
export function installAccessControl(app: FastifyInstance, service: ApiService): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('accessNeeds', null as unknown as readonly Need[]);

  // Fail closed at build time: a route that forgot its declaration would otherwise be open.
  // A route added by another project's plugin takes the access its plugin was registered
  // with (registerWithAccess); `this` is the plugin scope that adds the route.
  app.addHook('onRoute', function declaredAccess(route) {
    const config = route.config as { access?: RouteAccess } | undefined;
    const access = config?.access ?? (this as ScopeWithAccess)[SCOPE_ACCESS];
    if (access === undefined)
      throw new Error(`route ${route.method} ${route.url} declares no access (config.access)`);
    if (config?.access === undefined) route.config = { ...config, access };
  });

  // Who is asking. Callback style: this runs on every request; while auth is off it is one check.
  app.addHook('onRequest', (req, reply, done) => {
    req.accessNeeds = NO_NEEDS;
    const access = req.routeOptions.config.access;
    if (!service.authState.enabled || access === 'public' || access === undefined) {
      req.principal = ANONYMOUS;
      return done();
    }
    const authorization = req.headers.authorization;
    // With --client-ca-file, a verified client certificate's Common Name names the user.
    service.authenticate(authorization, peerCertificateCommonName(req.raw.socket)).then(
      (principal) => {
        req.principal = principal;
        done();
      },
      (err: unknown) => {
        if (err instanceof AuthError) refuse(reply, err);
        else done(err as Error);
      },
    );
  });

  // What it may do: after validation, so a route's needs can read its parsed body. Callback
  // style with a synchronous way out: while auth is off this costs no promise per request.
  app.addHook('preHandler', (req, reply, done) => {
    const access = req.routeOptions.config.access;
    if (access === undefined || access === 'public' || access === 'authenticated') return done();
    const principal = req.principal;
    // A hook that answers does not call done(): the answer ends the request.
    if (access === 'root') {
      if (!principal.root) return void refuse(reply, denied('only root may do this'));
      return done();
    }
    // Root needs no check, but streams keep the needs to re-check them if auth changes later.
    if (principal.user === undefined) return done();
    checkNeeds(service, principal, access, req).then(
      (reason) => {
        if (reason !== undefined) refuse(reply, denied(reason));
        else done();
      },
      (err: unknown) => done(err as Error),
    );
  });
}

async function checkNeeds(
  service: ApiService,
  principal: Principal,
  access: (req: FastifyRequest) => readonly Need[] | Promise<readonly Need[]>,
  req: FastifyRequest,
): Promise<string | undefined> {
  const needs = await access(req);
  req.accessNeeds = needs;
  if (principal.root) return undefined;
  return missingNeed(service, principal, needs);
}

/** Why `principal` may not do all of `needs`, or undefined when it may. */
async function missingNeed(
  service: ApiService,
  principal: Principal,
  needs: readonly Need[],
): Promise<string | undefined> {
  const state = service.authState;
  for (const need of needs) {
    if ('lease' in need) {
      const owner = await service.leaseOwner(need.lease, service.requestDeadline());
      // A missing lease is the handler's 404; someone else's (or an ownerless) lease is not yours.
      if (owner !== undefined && owner !== principal.user)
        return `lease ${need.lease} belongs to another user`;
    } else if (!permits(state, principal, need)) {
      return `user ${principal.user} may not ${need.access} ${need.resource} "${need.key}"`;
    }
  }
  return undefined;
}

/**
 * Whether the request's user may still do what it was allowed to when its
 * stream started (called when users or roles change). Lease needs are not
 * re-checked: ownership never changes.
 */
export function stillPermitted(service: ApiService, req: FastifyRequest): boolean {
  const state = service.authState;
  const principal = req.principal;
  if (!state.enabled) return true;
  // A stream opened while auth was off has no user: it ends once auth is on.
  if (principal.user === undefined) return false;
  const user = state.user(principal.user);
  if (user === undefined) return false;
  const now: Principal = { user: user.name, root: state.isRoot(user.name) };
  const access = req.routeOptions.config.access;
  if (access === 'root') return now.root;
  if (now.root) return true;
  return req.accessNeeds.every((need) => 'lease' in need || permits(state, now, need));
}

function denied(message: string): AuthError {
  return new AuthError('permission_denied', message);
}

function refuse(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof AuthError)
    return sendError(reply, err.code, err.message, {}, err.retryAfterSeconds);
  throw err;
}
