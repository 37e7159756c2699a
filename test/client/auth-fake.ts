/**
 * A small fake raftkv for client and kvctl auth tests: API.md's auth routes,
 * one KV route (GET/PUT /v1/kv/{key}, GET /v1/kv) and a KV watch, checking
 * Bearer tokens and Basic credentials the way API.md says, over HTTP or
 * HTTPS (optionally requiring a client certificate, whose CN names the user).
 * Every request is recorded. It is not the real server: the point is to see
 * what the client sends and how it reacts to each answer.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

export interface Recorded {
  method: string;
  url: string;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  lastEventId: string | undefined;
  body: unknown;
}

interface Permission {
  resource: string;
  prefix: string;
  access: string;
}

export interface FakeOptions {
  /** Seconds; the ttl of issued tokens. Default 300. */
  ttlSeconds?: number;
  /** Delay of POST /v1/auth/token, to let concurrent requests pile up. */
  tokenDelayMs?: number;
  /** Start with authentication enabled (and root/rootpw holding root). Default true. */
  enabled?: boolean;
  https?: { key: string; cert: string; ca?: string; requestCert?: boolean };
}

export interface FakeServer {
  url: string;
  requests: Recorded[];
  users: Map<string, { password: string | undefined; roles: string[] }>;
  roles: Map<string, Permission[]>;
  /** `throttleToken`: POST /v1/auth/token answers 429 with Retry-After: 7. */
  state: { enabled: boolean; ttlSeconds: number; tokenDelayMs: number; throttleToken: boolean };
  /** Tokens issued so far, in order. */
  issued: string[];
  /** Every token stops working (as after a password change or re-enable). */
  invalidateTokens(): void;
  /** The next `n` authenticated requests answer 401 whatever they carry. */
  reject401(n: number): void;
  /** Ends every open watch stream abruptly (a node going away). */
  dropWatches(): void;
  /** Sends an SSE event to every open watch. */
  emit(event: string, data: unknown, id?: number): void;
  close(): Promise<void>;
}

export async function startFake(options: FakeOptions = {}): Promise<FakeServer> {
  const requests: Recorded[] = [];
  const users: FakeServer['users'] = new Map([['root', { password: 'rootpw', roles: ['root'] }]]);
  const roles: FakeServer['roles'] = new Map();
  const state = {
    enabled: options.enabled ?? true,
    ttlSeconds: options.ttlSeconds ?? 300,
    tokenDelayMs: options.tokenDelayMs ?? 0,
    throttleToken: false,
  };
  const tokens = new Map<string, { user: string; expiresAtMs: number }>();
  const issued: string[] = [];
  let forced401 = 0;
  const kv = new Map<string, string>();
  let revision = 1;
  const watchers = new Set<FastifyReply>();

  // One type for both variants: the handlers only use what HTTP/1.1 and HTTPS servers share.
  const app = (options.https
    ? Fastify({
        https: {
          key: options.https.key,
          cert: options.https.cert,
          ...(options.https.ca ? { ca: options.https.ca } : {}),
          requestCert: options.https.requestCert === true,
          rejectUnauthorized: options.https.requestCert === true,
        },
      })
    : Fastify()) as unknown as FastifyInstance;

  app.addHook('preHandler', async (req) => {
    const h = req.headers;
    requests.push({
      method: req.method,
      url: req.url,
      authorization: h.authorization,
      idempotencyKey: h['idempotency-key'] as string | undefined,
      lastEventId: h['last-event-id'] as string | undefined,
      body: req.body,
    });
  });

  const fail = (reply: FastifyReply, status: number, code: string, message: string) =>
    reply.code(status).send({ error: { code, message } });

  /** The user a request authenticates as; undefined after answering 401 itself. */
  const authenticate = (req: FastifyRequest, reply: FastifyReply): string | undefined | null => {
    if (!state.enabled) return null; // auth off: anyone
    if (forced401 > 0) {
      forced401--;
      fail(reply, 401, 'unauthenticated', 'forced by the test');
      return undefined;
    }
    const header = req.headers.authorization ?? '';
    if (header.startsWith('Bearer ')) {
      const t = tokens.get(header.slice(7));
      if (t && Date.now() < t.expiresAtMs && users.has(t.user)) return t.user;
      fail(reply, 401, 'unauthenticated', 'invalid or expired token');
      return undefined;
    }
    if (header.startsWith('Basic ')) {
      const [name, ...rest] = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':');
      const u = users.get(name ?? '');
      if (u && u.password !== undefined && u.password === rest.join(':')) return name!;
      fail(reply, 401, 'unauthenticated', 'wrong name or password');
      return undefined;
    }
    const peer = (req.raw.socket as TLSSocket).getPeerCertificate?.();
    const cn = peer?.subject?.CN;
    if (typeof cn === 'string' && users.has(cn)) return cn;
    fail(reply, 401, 'unauthenticated', 'credentials required');
    return undefined;
  };

  const rootOnly = (req: FastifyRequest, reply: FastifyReply): boolean => {
    const user = authenticate(req, reply);
    if (user === undefined) return false;
    if (user !== null && !users.get(user)?.roles.includes('root')) {
      fail(reply, 403, 'permission_denied', `user ${user} is not root`);
      return false;
    }
    return true;
  };

  const permits = (user: string | null, key: string, access: 'read' | 'write'): boolean => {
    if (user === null) return true;
    const u = users.get(user)!;
    if (u.roles.includes('root')) return true;
    return u.roles.some((r) =>
      (roles.get(r) ?? []).some(
        (p) =>
          p.resource === 'kv' &&
          key.startsWith(p.prefix) &&
          (p.access === 'readwrite' || p.access === access),
      ),
    );
  };

  app.post('/v1/auth/token', async (req, reply) => {
    const { name, password } = (req.body ?? {}) as { name?: string; password?: string };
    if (state.tokenDelayMs > 0) await new Promise((r) => setTimeout(r, state.tokenDelayMs));
    if (state.throttleToken) {
      reply.header('retry-after', '7');
      return fail(reply, 429, 'too_many_requests', `too many failed attempts for ${name}`);
    }
    const u = users.get(name ?? '');
    if (!u || u.password === undefined || u.password !== password)
      return fail(reply, 401, 'unauthenticated', 'wrong name or password');
    const token = randomBytes(12).toString('hex');
    tokens.set(token, { user: name!, expiresAtMs: Date.now() + state.ttlSeconds * 1000 });
    issued.push(token);
    return { token, ttl: state.ttlSeconds };
  });

  app.get('/v1/auth/status', async () => ({ enabled: state.enabled }));
  app.get('/health', async () => ({ status: 'ok' }));

  app.post('/v1/auth/enable', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    if (!users.get('root')?.roles.includes('root'))
      return fail(reply, 400, 'invalid_request', 'a user root holding the role root is needed');
    state.enabled = true;
    return {};
  });
  app.post('/v1/auth/disable', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    state.enabled = false;
    return {};
  });

  app.get('/v1/auth/users', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    return { users: [...users].map(([name, u]) => ({ name, roles: u.roles })) };
  });
  app.get('/v1/auth/users/:name', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    const { name } = req.params as { name: string };
    const u = users.get(name);
    if (!u) return fail(reply, 404, 'key_not_found', `no user ${name}`);
    return { name, roles: u.roles };
  });
  app.put('/v1/auth/users/:name', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    const { name } = req.params as { name: string };
    const body = (req.body ?? {}) as { password?: string; roles?: string[] };
    const old = users.get(name);
    const next = {
      password: body.password ?? old?.password,
      roles: body.roles ?? old?.roles ?? [],
    };
    users.set(name, next);
    if (old) for (const [t, v] of tokens) if (v.user === name) tokens.delete(t);
    return reply.code(old ? 200 : 201).send({ name, roles: next.roles });
  });
  app.delete('/v1/auth/users/:name', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    const { name } = req.params as { name: string };
    if (!users.delete(name)) return fail(reply, 404, 'key_not_found', `no user ${name}`);
    return {};
  });

  app.get('/v1/auth/roles', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    return { roles: [...roles].map(([name, permissions]) => ({ name, permissions })) };
  });
  app.get('/v1/auth/roles/:name', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    const { name } = req.params as { name: string };
    const p = roles.get(name);
    if (!p) return fail(reply, 404, 'key_not_found', `no role ${name}`);
    return { name, permissions: p };
  });
  app.put('/v1/auth/roles/:name', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    const { name } = req.params as { name: string };
    const { permissions } = (req.body ?? {}) as { permissions?: Permission[] };
    if (!Array.isArray(permissions))
      return fail(reply, 400, 'invalid_request', 'permissions must be an array');
    const existed = roles.has(name);
    roles.set(name, permissions);
    return reply.code(existed ? 200 : 201).send({ name, permissions });
  });
  app.delete('/v1/auth/roles/:name', async (req, reply) => {
    if (!rootOnly(req, reply)) return reply;
    const { name } = req.params as { name: string };
    if (!roles.delete(name)) return fail(reply, 404, 'key_not_found', `no role ${name}`);
    return {};
  });

  const entry = (key: string) => ({
    key,
    value: kv.get(key)!,
    createRevision: revision,
    modRevision: revision,
    version: 1,
    lease: null,
  });

  app.get('/v1/kv/*', async (req, reply) => {
    const user = authenticate(req, reply);
    if (user === undefined) return reply;
    const key = decodeURIComponent((req.params as { '*': string })['*']);
    if (!permits(user, key, 'read')) return fail(reply, 403, 'permission_denied', `read ${key}`);
    if (!kv.has(key))
      return reply
        .code(404)
        .send({ error: { code: 'key_not_found', message: key }, revision: revision });
    return { kv: entry(key), revision };
  });
  app.put('/v1/kv/*', async (req, reply) => {
    const user = authenticate(req, reply);
    if (user === undefined) return reply;
    const key = decodeURIComponent((req.params as { '*': string })['*']);
    if (!permits(user, key, 'write')) return fail(reply, 403, 'permission_denied', `write ${key}`);
    kv.set(key, (req.body as { value: string }).value);
    revision++;
    return { revision, kv: entry(key), prevKv: null };
  });
  app.get('/v1/kv', async (req, reply) => {
    const user = authenticate(req, reply);
    if (user === undefined) return reply;
    return { kvs: [], more: false, revision };
  });
  app.get('/v1/watch/*', async (req, reply) => {
    const user = authenticate(req, reply);
    if (user === undefined) return reply;
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
    reply.raw.write(`event: progress\ndata: ${JSON.stringify({ revision })}\n\n`);
    watchers.add(reply);
    reply.raw.on('close', () => watchers.delete(reply));
  });

  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `${options.https ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    users,
    roles,
    state,
    issued,
    invalidateTokens: () => tokens.clear(),
    reject401: (n) => {
      forced401 = n;
    },
    dropWatches() {
      for (const w of watchers) w.raw.destroy();
      watchers.clear();
    },
    emit(event, data, id) {
      for (const w of watchers)
        w.raw.write(
          `event: ${event}\n${id !== undefined ? `id: ${id}\n` : ''}data: ${JSON.stringify(data)}\n\n`,
        );
    },
    async close() {
      for (const w of watchers) w.raw.destroy();
      await app.close();
    },
  };
}

export interface Certs {
  dir: string;
  /** PEM texts. */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
  /** Paths of the same, for kvctl. */
  files: Record<
    'ca' | 'clientCert' | 'clientKey' | 'otherCa' | 'otherClientCert' | 'otherClientKey',
    string
  >;
  remove(): void;
}

/**
 * A CA with a server certificate for 127.0.0.1/localhost and a client
 * certificate (CN `clientName`), and a second, unrelated CA with a client
 * certificate of its own, made with the openssl command in a temp dir.
 */
export function makeCerts(clientName = 'alice'): Certs {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-client-tls-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (name: string) =>
    ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name);
  const ca = (name: string, cn: string) => {
    key(`${name}.key`);
    const subject = `/CN=${cn}`;
    ssl(
      'req',
      '-x509',
      '-new',
      '-key',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      subject,
    );
  };
  const leaf = (name: string, caName: string, cn: string, ext: string) => {
    key(`${name}.key`);
    ssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${caName}.crt`,
      '-CAkey',
      `${caName}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  ca('ca', 'raftkv test CA');
  ca('other-ca', 'unrelated CA');
  leaf(
    'server',
    'ca',
    'raftkv test server',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  leaf('client', 'ca', clientName, 'extendedKeyUsage=clientAuth\n');
  leaf('other-client', 'other-ca', clientName, 'extendedKeyUsage=clientAuth\n');
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return {
    dir,
    ca: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    otherCa: read('other-ca.crt'),
    otherClientCert: read('other-client.crt'),
    otherClientKey: read('other-client.key'),
    files: {
      ca: join(dir, 'ca.crt'),
      clientCert: join(dir, 'client.crt'),
      clientKey: join(dir, 'client.key'),
      otherCa: join(dir, 'other-ca.crt'),
      otherClientCert: join(dir, 'other-client.crt'),
      otherClientKey: join(dir, 'other-client.key'),
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
