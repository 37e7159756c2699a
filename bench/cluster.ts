/**
 * Starts and stops 3-node clusters (raftkv or etcd) as real child processes on 127.0.0.1, each
 * with free ports and fresh data dirs under one temp dir. Every process started here is
 * remembered by pid, so `stopAll()` can stop it (SIGTERM, then SIGKILL after a bound) on any path
 * out: normal end, error, Ctrl-C.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { type Dispatcher, request } from 'undici';
import {
  type ClientSecurity,
  connectOptions,
  makeJwtKeys,
  setupDispatcher,
  setupEtcdAuth,
  setupRaftkvAuth,
  type TlsFiles,
} from './security.js';

export type System = 'raftkv' | 'etcd';

/** How a cluster is secured: TLS on client and peer ports (`tls` set), authentication on. */
export interface ClusterSecurity {
  tls?: TlsFiles;
  auth: boolean;
}

export interface Cluster {
  system: System;
  version: string;
  /** Client base URLs, `http://127.0.0.1:P` (`https://` with TLS), one per member. */
  endpoints: string[];
  /** What a client needs in this mode: the CA to trust, the credentials to present. */
  client: ClientSecurity;
  pids: number[];
  /** Log file per member (stdout and stderr). */
  logs: string[];
  /** Why a member is gone, or undefined while all three run. */
  deadReason(): string | undefined;
}

const root = resolve(import.meta.dirname, '..');
const stopTimeoutMs = 10_000;
const leaderTimeoutMs = 30_000;
const children: ChildProcess[] = [];
let stopping = false;

/** A free TCP port on 127.0.0.1 (bound then released: good enough on a quiet loopback). */
async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port')),
      );
    });
  });
}

function launch(cmd: string, args: string[], logPath: string): ChildProcess {
  const fd = openSync(logPath, 'a');
  // Own process group: a terminal Ctrl-C reaches only the harness, which then stops members itself.
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', fd, fd], detached: true });
  children.push(child);
  return child;
}

function watchDeaths(procs: ChildProcess[], names: string[]): () => string | undefined {
  let reason: string | undefined;
  for (const [i, p] of procs.entries()) {
    p.on('exit', (code, signal) => {
      if (!stopping) reason ??= `${names[i]} exited (${signal ?? code})`;
    });
  }
  return () => reason;
}

async function getJson(
  url: string,
  method: 'GET' | 'POST' = 'GET',
  dispatcher?: Dispatcher,
): Promise<unknown> {
  const res = await request(url, {
    method,
    ...(dispatcher ? { dispatcher } : {}),
    ...(method === 'POST' ? { body: '{}' } : {}),
    headersTimeout: 2_000,
    bodyTimeout: 2_000,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
  return JSON.parse(text);
}

/** Polls `ready` until it is true for the cluster, or fails after leaderTimeoutMs. */
async function waitUntil(
  what: string,
  dead: () => string | undefined,
  ready: () => Promise<boolean>,
) {
  const deadline = Date.now() + leaderTimeoutMs;
  while (Date.now() < deadline) {
    const gone = dead();
    if (gone) throw new Error(`${what}: ${gone}`);
    if (await ready().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: no leader after ${leaderTimeoutMs} ms`);
}

/**
 * Compiles the server as it is shipped (`npm run build:dist` → dist/), so the
 * members run plain JavaScript like the Docker image does, without tsx's
 * loader (about 34 MB of RSS per member). Returns the entry point.
 */
function buildServer(): string {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
    cwd: root,
    stdio: 'inherit',
    timeout: 180_000,
  });
  return join(root, 'dist', 'cmd', 'raftkv.js');
}

/** `nodeArgs` go to each member's node (e.g. `--cpu-prof`). */
export async function startRaftkv(
  baseDir: string,
  nodeArgs: string[] = [],
  security: ClusterSecurity = { auth: false },
): Promise<Cluster> {
  const entry = buildServer();
  const names = ['n1', 'n2', 'n3'];
  const clientPorts = [await freePort(), await freePort(), await freePort()];
  const peerPorts = [await freePort(), await freePort(), await freePort()];
  const { tls } = security;
  const scheme = tls ? 'https' : 'http';
  const initialCluster = names
    .map((n, i) => `${n}=${scheme}://127.0.0.1:${peerPorts[i]}`)
    .join(',');
  // Client port: HTTPS with the node certificate (clients are not asked for one); peer port:
  // mutual TLS against the CA.
  const tlsArgs = tls
    ? [
        ...['--client-cert-file', tls.certFile, '--client-key-file', tls.keyFile],
        ...['--peer-cert-file', tls.certFile, '--peer-key-file', tls.keyFile],
        ...['--peer-ca-file', tls.caFile],
      ]
    : [];
  const dir = join(baseDir, 'raftkv');
  mkdirSync(dir, { recursive: true });
  const logs = names.map((n) => join(dir, `${n}.log`));
  const procs = names.map((name, i) =>
    launch(
      process.execPath,
      [
        ...nodeArgs,
        entry,
        '--name',
        name,
        '--data-dir',
        join(dir, name),
        '--listen-client',
        `127.0.0.1:${clientPorts[i]}`,
        '--listen-peer',
        `127.0.0.1:${peerPorts[i]}`,
        '--initial-cluster',
        initialCluster,
        '--log-level',
        'warn',
        ...tlsArgs,
      ],
      logs[i]!,
    ),
  );
  const deadReason = watchDeaths(procs, names);
  const endpoints = clientPorts.map((p) => `${scheme}://127.0.0.1:${p}`);
  const dispatcher = setupDispatcher(tls);
  let version = 'unknown';
  await waitUntil('raftkv', deadReason, async () => {
    const all = (await Promise.all(
      endpoints.map((e) => getJson(`${e}/v1/status`, 'GET', dispatcher)),
    )) as Array<{
      role: string;
      leader: string | null;
      version?: string;
    }>;
    version = all[0]?.version ?? version;
    const leader = all[0]?.leader;
    return (
      leader != null &&
      all.every((s) => s.leader === leader) &&
      all.some((s) => s.role === 'leader')
    );
  });
  const client: ClientSecurity = {};
  const connect = connectOptions(tls);
  if (connect) client.connect = connect;
  if (security.auth) client.credentials = await setupRaftkvAuth(endpoints, dispatcher);
  await dispatcher?.close();
  return {
    system: 'raftkv',
    version,
    endpoints,
    client,
    pids: procs.map((p) => p.pid!),
    logs,
    deadReason,
  };
}

/** The path of an `etcd` binary on PATH, or undefined. The harness never installs one. */
export function findEtcd(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'etcd');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** etcd's auth token kinds: `simple` (its default) or `jwt` (signed, RS256 here). */
export type EtcdToken = 'simple' | 'jwt';
/** Token lifetime given to etcd (simple: since last use; jwt: since issue), in seconds. */
const etcdTokenTtlSeconds = 300;

export async function startEtcd(
  bin: string,
  baseDir: string,
  security: ClusterSecurity = { auth: false },
  tokenKind: EtcdToken = 'simple',
): Promise<Cluster> {
  const names = ['e1', 'e2', 'e3'];
  const clientPorts = [await freePort(), await freePort(), await freePort()];
  const peerPorts = [await freePort(), await freePort(), await freePort()];
  const { tls } = security;
  const scheme = tls ? 'https' : 'http';
  const peerUrl = (i: number) => `${scheme}://127.0.0.1:${peerPorts[i]}`;
  const clientUrl = (i: number) => `${scheme}://127.0.0.1:${clientPorts[i]}`;
  const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const dir = join(baseDir, 'etcd');
  mkdirSync(dir, { recursive: true });
  // As raftkv: HTTPS on the client port without client certificates (etcd's
  // --client-cert-auth is optional, and off here as on raftkv), mutual TLS between peers.
  const secureArgs = tls
    ? [
        ...['--cert-file', tls.certFile, '--key-file', tls.keyFile],
        ...['--peer-cert-file', tls.certFile, '--peer-key-file', tls.keyFile],
        ...['--peer-trusted-ca-file', tls.caFile, '--peer-client-cert-auth'],
      ]
    : [];
  if (security.auth && tokenKind === 'jwt') {
    const keys = makeJwtKeys(dir);
    const ttl = `${etcdTokenTtlSeconds}s`;
    secureArgs.push(
      '--auth-token',
      `jwt,pub-key=${keys.pub},priv-key=${keys.priv},sign-method=RS256,ttl=${ttl}`,
    );
  } else if (security.auth) {
    secureArgs.push('--auth-token', 'simple', '--auth-token-ttl', String(etcdTokenTtlSeconds));
  }
  const logs = names.map((n) => join(dir, `${n}.log`));
  const token = `bench-${process.pid}-${Date.now()}`;
  const procs = names.map((name, i) =>
    launch(
      bin,
      [
        '--name',
        name,
        '--data-dir',
        join(dir, name),
        '--listen-client-urls',
        clientUrl(i),
        '--advertise-client-urls',
        clientUrl(i),
        '--listen-peer-urls',
        peerUrl(i),
        '--initial-advertise-peer-urls',
        peerUrl(i),
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        token,
        '--logger',
        'zap',
        '--log-level',
        'warn',
        ...secureArgs,
      ],
      logs[i]!,
    ),
  );
  const deadReason = watchDeaths(procs, names);
  const endpoints = names.map((_, i) => clientUrl(i));
  const dispatcher = setupDispatcher(tls);
  await waitUntil('etcd', deadReason, async () => {
    const all = (await Promise.all(
      endpoints.map((e) => getJson(`${e}/v3/maintenance/status`, 'POST', dispatcher)),
    )) as Array<{ leader?: string }>;
    const leader = all[0]?.leader;
    return leader !== undefined && leader !== '0' && all.every((s) => s.leader === leader);
  });
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '';
  const client: ClientSecurity = {};
  const connect = connectOptions(tls);
  if (connect) client.connect = connect;
  if (security.auth)
    client.credentials = await setupEtcdAuth(endpoints, dispatcher, etcdTokenTtlSeconds);
  await dispatcher?.close();
  return {
    system: 'etcd',
    version: version.replace(/^etcd Version:\s*/, ''),
    endpoints,
    client,
    pids: procs.map((p) => p.pid!),
    logs,
    deadReason,
  };
}

/** A field of /proc/<pid>/status in KiB (VmRSS now, VmHWM peak), or 0 once the process is gone. */
export function procKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(
      new RegExp(`^${field}:\\s+(\\d+)`, 'm'),
    );
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** CPU time (user + system) a process has used so far, in ms, or 0 once it is gone. */
export function procCpuMs(pid: number): number {
  try {
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15, in clock ticks (100/s).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

/** Stops every process this module started: SIGTERM, then SIGKILL after stopTimeoutMs. */
export async function stopAll(): Promise<void> {
  stopping = true;
  const live = children.filter(running);
  const exited = live.map((c) => new Promise((r) => c.once('exit', r)));
  for (const c of live) c.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(exited),
    new Promise((r) => {
      timer = setTimeout(r, stopTimeoutMs);
    }),
  ]);
  clearTimeout(timer);
  const stuck = children.filter(running);
  const killed = stuck.map((c) => new Promise((r) => c.once('exit', r)));
  for (const c of stuck) c.kill('SIGKILL');
  await Promise.race([Promise.all(killed), new Promise((r) => setTimeout(r, 2_000).unref())]);
}

/** Last resort on process exit (synchronous): SIGKILL whatever is still running. */
export function killAllNow(): void {
  for (const c of children.filter(running)) c.kill('SIGKILL');
}

/** The last lines of a log file, to explain a dead member. */
export function logTail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
