/**
 * The secure cells (`--tls`, `--auth`): what both systems run with, and what the load generator
 * presents, so that the secure comparison is the one users will make.
 *
 * - TLS: one CA and one node certificate (ECDSA P-256, SANs 127.0.0.1 and localhost) made by
 *   raftkv's own `certs` code, used by all six members: HTTPS on the client port (server
 *   certificate only: clients verify the server against the CA and do not present one), mutual
 *   TLS between peers. The load generator's undici pools get `connect: { ca }`.
 * - Auth: on each system a `root` user with the root role, a role `bench` allowed to read and
 *   write keys under `bench/`, a user `bench` with it, then authentication enabled. The load
 *   generator asks for a token as `bench` and sends it on every request (raftkv: `Authorization:
 *   Bearer T`, etcd's gateway: `Authorization: T`), renews it at half its lifetime, and on a 401
 *   renews it and retries the request once, as raftkv's client library does.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, type Dispatcher, request } from 'undici';
import { CA_CERT_FILE, createCa, createNode } from '../src/tls/certs.js';

export interface SecurityMode {
  tls: boolean;
  auth: boolean;
}

/** 'plain', 'tls', 'auth' or 'tls+auth'. */
export const modeName = (m: SecurityMode): string =>
  m.tls && m.auth ? 'tls+auth' : m.tls ? 'tls' : m.auth ? 'auth' : 'plain';

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The CA certificate (PEM), for clients. */
  ca: string;
}

/** A CA and one node certificate for 127.0.0.1/localhost in `dir`. */
export async function makeCerts(dir: string): Promise<TlsFiles> {
  await createCa({ dir, days: 2 });
  await createNode({ dir, hosts: ['127.0.0.1', 'localhost'], name: 'node', days: 1 });
  const caFile = join(dir, CA_CERT_FILE);
  return {
    caFile,
    certFile: join(dir, 'node.crt'),
    keyFile: join(dir, 'node.key'),
    ca: readFileSync(caFile, 'utf8'),
  };
}

/** An RSA key pair for etcd's `--auth-token jwt` (RS256), written as PEM files in `dir`. */
export function makeJwtKeys(dir: string): { pub: string; priv: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const pub = join(dir, 'jwt.pub');
  const priv = join(dir, 'jwt.key');
  writeFileSync(pub, publicKey, { mode: 0o600 });
  writeFileSync(priv, privateKey, { mode: 0o600 });
  return { pub, priv };
}

export const rootUser = { name: 'root', password: 'bench-root-pw' };
export const benchUser = { name: 'bench', password: 'bench-user-pw' };
/** Every key the workloads touch starts with this. */
export const benchPrefix = 'bench/';

/** The undici options that reach a member's client port in this mode (none when plain). */
export const connectOptions = (tls: TlsFiles | undefined) => (tls ? { ca: tls.ca } : undefined);

/** A dispatcher for the harness's own setup requests (readiness, users and roles). */
export function setupDispatcher(tls: TlsFiles | undefined): Dispatcher | undefined {
  return tls ? new Agent({ connect: { ca: tls.ca } }) : undefined;
}

/** A JSON request for setup work; fails unless the status is 2xx. */
export async function call(
  dispatcher: Dispatcher | undefined,
  url: string,
  method: 'GET' | 'PUT' | 'POST',
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<unknown> {
  const res = await request(url, {
    method,
    ...(dispatcher ? { dispatcher } : {}),
    headers: { 'content-type': 'application/json', ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300)
    throw new Error(`${method} ${url}: ${res.statusCode} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/**
 * The `Authorization` header of one system's bench user: fetched once before the first cell,
 * renewed in the background at half its lifetime, and on demand after a 401.
 */
export class Credentials {
  private value = '';
  private renewing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Tokens fetched after the first (renewals), for the report. */
  renewals = 0;

  constructor(
    /** Asks the cluster for a token; returns the header value and its lifetime in seconds. */
    private readonly fetch: () => Promise<{ header: string; ttlSeconds: number }>,
  ) {}

  /** The header to send now. */
  get header(): string {
    return this.value;
  }

  async start(): Promise<void> {
    await this.refresh();
  }

  /**
   * After a 401 for `stale`: fetch a new token unless another request already did (at most one
   * fetch at a time).
   */
  renew(stale: string): Promise<void> {
    if (stale !== this.value) return Promise.resolve();
    this.renewing ??= this.refresh().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async refresh(): Promise<void> {
    const { header, ttlSeconds } = await this.fetch();
    if (this.value) this.renewals++;
    this.value = header;
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        void this.renew(this.value).catch(() => {}); // a failed renewal: the next 401 retries
      },
      (ttlSeconds * 1000) / 2,
    );
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/** What the load generator needs to talk to one cluster in this mode. */
export interface ClientSecurity {
  connect?: { ca: string };
  credentials?: Credentials;
}

/**
 * raftkv: root, role `bench` (kv readwrite under bench/), user `bench`, enable; waits until every
 * member says auth is enabled, then returns the bench user's credentials.
 */
export async function setupRaftkvAuth(
  endpoints: string[],
  dispatcher: Dispatcher | undefined,
): Promise<Credentials> {
  const e = endpoints[0]!;
  await call(dispatcher, `${e}/v1/auth/users/${rootUser.name}`, 'PUT', {
    password: rootUser.password,
    roles: ['root'],
  });
  await call(dispatcher, `${e}/v1/auth/roles/bench`, 'PUT', {
    permissions: [{ resource: 'kv', prefix: benchPrefix, access: 'readwrite' }],
  });
  await call(dispatcher, `${e}/v1/auth/users/${benchUser.name}`, 'PUT', {
    password: benchUser.password,
    roles: ['bench'],
  });
  await call(dispatcher, `${e}/v1/auth/enable`, 'POST', {});
  const deadline = Date.now() + 10_000;
  for (;;) {
    const all = (await Promise.all(
      endpoints.map((u) => call(dispatcher, `${u}/v1/auth/status`, 'GET')),
    )) as Array<{ enabled: boolean }>;
    if (all.every((s) => s.enabled)) break;
    if (Date.now() > deadline) throw new Error('raftkv: auth not enabled on every member');
    await new Promise((r) => setTimeout(r, 50));
  }
  const credentials = new Credentials(async () => {
    const r = (await call(dispatcher, `${e}/v1/auth/token`, 'POST', benchUser)) as {
      token: string;
      ttl: number;
    };
    return { header: `Bearer ${r.token}`, ttlSeconds: r.ttl };
  });
  await credentials.start();
  return credentials;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/**
 * etcd, through its JSON gateway (what `etcdctl user add`, `role add`, `role grant-permission
 * --prefix`, `user grant-role` and `auth enable` do): root with the root role, role `bench`
 * with readwrite on the bench/ prefix, user `bench`, enable. `tokenTtlSeconds` is how long a
 * token lives (simple tokens: since last use; jwt: since issue); etcd's answer does not say.
 */
export async function setupEtcdAuth(
  endpoints: string[],
  dispatcher: Dispatcher | undefined,
  tokenTtlSeconds: number,
): Promise<Credentials> {
  const e = endpoints[0]!;
  const post = (path: string, body: unknown, headers?: Record<string, string>) =>
    call(dispatcher, `${e}${path}`, 'POST', body, headers);
  await post('/v3/auth/user/add', rootUser);
  await post('/v3/auth/role/add', { name: 'root' });
  await post('/v3/auth/user/grant', { user: rootUser.name, role: 'root' });
  await post('/v3/auth/role/add', { name: 'bench' });
  const end = Buffer.from(benchPrefix, 'utf8');
  end[end.length - 1]! += 1;
  await post('/v3/auth/role/grant', {
    name: 'bench',
    perm: { permType: 'READWRITE', key: b64(benchPrefix), range_end: end.toString('base64') },
  });
  await post('/v3/auth/user/add', benchUser);
  await post('/v3/auth/user/grant', { user: benchUser.name, role: 'bench' });
  await post('/v3/auth/enable', {});
  const credentials = new Credentials(async () => {
    const r = (await post('/v3/auth/authenticate', benchUser)) as { token: string };
    return { header: r.token, ttlSeconds: tokenTtlSeconds };
  });
  await credentials.start();
  // Every member applies the enable and the token through Raft: wait until each one takes it.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await Promise.all(
      endpoints.map((u) =>
        call(
          dispatcher,
          `${u}/v3/kv/range`,
          'POST',
          { key: b64(`${benchPrefix}probe`) },
          { authorization: credentials.header },
        ).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (ok.every(Boolean)) break;
    if (Date.now() > deadline) throw new Error('etcd: the bench token is not accepted everywhere');
    await new Promise((r) => setTimeout(r, 50));
  }
  return credentials;
}
