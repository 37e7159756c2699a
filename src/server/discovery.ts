/**
 * Founding-member discovery from DNS SRV records (--discovery-srv), for
 * platforms that know the founders' names only once they run: a Kubernetes
 * StatefulSet behind a headless Service. On a first start only, it finds what
 * --initial-cluster would have said, and the start then proceeds exactly as
 * with that flag:
 *
 * 1. Each SRV record names one founder. Its target host, e.g.
 *    `raftkv-0.raftkv-peer.default.svc.cluster.local`, gives the member name
 *    (the first label: the pod name) and, with the record's port, the peer URL
 *    `<scheme>://<target>:<port>` (https:// when peer TLS is on).
 * 2. The same target and port listed twice count once; one name with two
 *    different targets or ports is refused at once (two services answer, or
 *    the targets are not pod names).
 * 3. The answer is complete when it names exactly --discovery-expect members,
 *    this member (--name) among them. Anything else (no records yet, fewer,
 *    more, this member missing, a resolver error) is asked again after a
 *    pause, until the deadline; then the start fails and says what it saw.
 * 4. This member's URL from the answer must be its --advertise-peer-url:
 *    otherwise the others would know it by another URL (refused at once).
 *
 * Every founder derives the same map from a complete answer, so all compute
 * the same cluster and member ids, as with an identical --initial-cluster.
 * Waiting for an exact count, rather than for the answer to stop changing,
 * means a slow pod delays the founding but never makes a smaller cluster.
 */
import { Resolver } from 'node:dns/promises';
import type { Logger } from 'pino';
import { peekIdentity } from '../storage/index.js';
import type { NodeConfig } from './config.js';
import { ServerError } from './errors.js';
import { createLogger } from './logger.js';
import { peerTlsEnabled } from './tls-config.js';

/** One SRV record, as node:dns's resolveSrv returns it. */
export interface SrvRecord {
  /** The target host. */
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** What discovery needs of a DNS resolver (node:dns/promises' Resolver has it). */
export interface SrvResolver {
  resolveSrv(hostname: string): Promise<SrvRecord[]>;
}

/** Why discovery stopped a start: a stable reason beside ServerError's code. */
export type DiscoveryFailure =
  /** The deadline passed without a complete answer (ServerError code `unavailable`). */
  | 'incomplete'
  /** One member name with two different targets or ports (`invalid_request`). */
  | 'conflict'
  /** This member's URL in the answer is not its --advertise-peer-url (`invalid_request`). */
  | 'self_mismatch'
  /** Flags that cannot go with discovery, or a missing one (`invalid_request`). */
  | 'bad_flags';

export class DiscoveryError extends ServerError {
  readonly failure: DiscoveryFailure;

  constructor(failure: DiscoveryFailure, message: string) {
    super(failure === 'incomplete' ? 'unavailable' : 'invalid_request', message);
    this.name = 'DiscoveryError';
    this.failure = failure;
  }
}

/** One look at the SRV records: the members they name (name → peer URL), sorted by name. */
export type DiscoveredMembers = Map<string, string>;

export interface DiscoveryOptions {
  /** The SRV name asked, fully qualified (no search domains apply). */
  srvName: string;
  /** How many founders make the answer complete. */
  expectMembers: number;
  /** This member's --name: it must be among the founders. */
  selfName: string;
  /** This member's --advertise-peer-url: its URL in the answer must be this one. */
  selfPeerUrl: string;
  peerScheme: 'http' | 'https';
  /** Give up (DiscoveryError `incomplete`) once this long has passed without a complete answer. */
  timeoutMs: number;
  /** Pause between two lookups; at least 1. */
  retryIntervalMs: number;
  resolver: SrvResolver;
  /** Milliseconds on any monotonic clock (tests drive a fake one). */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Told after each incomplete lookup: what was seen and why it is not enough. */
  onIncomplete?: (seen: DiscoveredMembers, why: string) => void;
}

/** DNS answers that mean "nothing published under this name yet", not a broken resolver. */
const NOT_YET = new Set(['ENOTFOUND', 'ENODATA']);

/** `raftkv-0.raftkv-peer.default.svc.cluster.local.` → `raftkv-0.raftkv-peer.default.svc.cluster.local` */
const normalizeHost = (host: string) => host.toLowerCase().replace(/\.$/, '');

/** Scheme, lower-case host and port, no trailing slash: how two peer URLs are compared. */
function comparableUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return url;
  }
}

/**
 * The members one SRV answer names (rules 1 and 2 above). Throws
 * DiscoveryError `conflict` when one name has two different targets or ports.
 */
export function membersFromSrv(records: SrvRecord[], scheme: 'http' | 'https'): DiscoveredMembers {
  const found = new Map<string, string>();
  for (const record of records) {
    const host = normalizeHost(record.name);
    // An SRV target of "." says the service is not available there: no member.
    if (host === '') continue;
    const name = host.split('.')[0]!;
    const url = `${scheme}://${host}:${record.port}`;
    const earlier = found.get(name);
    if (earlier !== undefined && earlier !== url) {
      throw new DiscoveryError(
        'conflict',
        `discovery: member name "${name}" comes from two SRV records (${earlier} and ${url}): ` +
          'each target host must be a distinct pod name (a StatefulSet behind one headless Service)',
      );
    }
    found.set(name, url);
  }
  return new Map([...found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Why an answer is not yet complete (rule 3), or undefined when it is. */
function incompleteBecause(
  found: DiscoveredMembers,
  options: DiscoveryOptions,
): string | undefined {
  const names = [...found.keys()].join(', ') || 'none';
  const expect = options.expectMembers;
  if (!found.has(options.selfName)) {
    return (
      `this member "${options.selfName}" is not among the ${found.size} found (${names}): ` +
      'its own record is not published yet, or --name is not its host name (the pod name)'
    );
  }
  if (found.size < expect) return `${found.size} of ${expect} founders found (${names})`;
  if (found.size > expect) {
    return (
      `${found.size} members found (${names}), more than --discovery-expect ${expect}: ` +
      'discovery founds a cluster of exactly that many; a member added later starts with --join'
    );
  }
  return undefined;
}

/**
 * Asks `options.srvName` until the answer names exactly the expected founders
 * (see the rules at the top of this file), and returns them as
 * --initial-cluster would: name → peer URL. Throws DiscoveryError.
 */
export async function discoverFounders(options: DiscoveryOptions): Promise<DiscoveredMembers> {
  const now = options.now ?? (() => performance.now());
  const sleep =
    options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const intervalMs = Math.max(1, options.retryIntervalMs);
  // Bounded in time and in count (a clock that does not move cannot make it spin forever).
  const attemptsMax = Math.ceil(options.timeoutMs / intervalMs) + 1;
  const started = now();
  let why = 'not asked yet';
  let found: DiscoveredMembers = new Map();
  for (let attempt = 1; attempt <= attemptsMax; attempt++) {
    let records: SrvRecord[] | undefined;
    try {
      records = await options.resolver.resolveSrv(options.srvName);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== undefined && NOT_YET.has(code)) records = [];
      else why = `the DNS lookup failed: ${code ?? (err as Error).message}`;
    }
    if (records !== undefined) {
      found = membersFromSrv(records, options.peerScheme);
      const selfUrl = found.get(options.selfName);
      if (selfUrl !== undefined && comparableUrl(selfUrl) !== comparableUrl(options.selfPeerUrl)) {
        throw new DiscoveryError(
          'self_mismatch',
          `discovery: the SRV records give this member "${options.selfName}" the peer URL ${selfUrl}, ` +
            `but --advertise-peer-url is ${options.selfPeerUrl}: make them the same ` +
            '(the same host name and domain, the headless Service port, https:// with peer TLS)',
        );
      }
      const incomplete = incompleteBecause(found, options);
      if (incomplete === undefined) return found;
      why = incomplete;
    }
    options.onIncomplete?.(found, why);
    if (now() - started + intervalMs > options.timeoutMs) break;
    await sleep(intervalMs);
  }
  throw new DiscoveryError(
    'incomplete',
    `discovery: no complete answer from ${options.srvName} within ${Math.round(options.timeoutMs / 1000)} s: ${why}`,
  );
}

/** The discovery flags of the raftkv command. */
export interface DiscoveryFlags {
  srvName: string;
  expectMembers: number | undefined;
  timeoutMs: number;
}

/** How long between two lookups while founders are still missing. */
const DISCOVERY_RETRY_MS = 2000;

/**
 * The founders for a start with --discovery-srv: discovered on a first start
 * (the data dir not yet initialized), none otherwise — a restart resumes from
 * its data dir, which records the cluster, and does not wait for DNS. The
 * result takes the place of --initial-cluster. Throws DiscoveryError for
 * flags that do not go with discovery or an answer that never completes,
 * StorageError for a data dir a start would refuse too.
 */
export async function foundersFromDiscovery(
  config: Partial<NodeConfig>,
  flags: DiscoveryFlags,
  deps: { resolver?: SrvResolver; log?: Logger } = {},
): Promise<Map<string, string>> {
  const badFlags = (message: string) => new DiscoveryError('bad_flags', message);
  if (config.initialCluster !== undefined && config.initialCluster.size > 0)
    throw badFlags(
      '--discovery-srv finds the founders that --initial-cluster names: give only one',
    );
  if (config.join)
    throw badFlags(
      '--discovery-srv founds a cluster; --join joins a running one with the members in --initial-cluster',
    );
  if (flags.expectMembers === undefined)
    throw badFlags('--discovery-srv needs --discovery-expect: how many founders to wait for');
  if (config.advertisePeerUrl === undefined)
    throw badFlags(
      '--discovery-srv needs --advertise-peer-url: the URL the SRV records give this member ' +
        '(e.g. https://raftkv-0.raftkv-peer.default.svc.cluster.local:7380)',
    );
  const name = config.name ?? 'default';
  const log =
    deps.log ??
    createLogger({ member: name, level: config.logLevel ?? 'info', format: config.logFormat });
  const dataDir = config.dataDir ?? './raftkv-data';
  const identity = await peekIdentity(dataDir);
  if (identity !== undefined) {
    log.info(
      { dataDir, clusterId: identity.clusterId },
      'data dir already initialized: founders not discovered (--discovery-srv applies to a first start only)',
    );
    return new Map();
  }
  let lastWhy = '';
  const founders = await discoverFounders({
    srvName: flags.srvName,
    expectMembers: flags.expectMembers,
    selfName: name,
    selfPeerUrl: config.advertisePeerUrl,
    peerScheme: peerTlsEnabled(config) ? 'https' : 'http',
    timeoutMs: flags.timeoutMs,
    retryIntervalMs: DISCOVERY_RETRY_MS,
    resolver: deps.resolver ?? new Resolver({ timeout: 2000, tries: 2 }),
    onIncomplete: (_seen, why) => {
      // One line per change of what is seen, not one per lookup.
      if (why !== lastWhy) log.info({ srv: flags.srvName }, `discovery: waiting: ${why}`);
      lastWhy = why;
    },
  });
  log.info(
    { srv: flags.srvName, founders: Object.fromEntries(founders) },
    'discovery: found the founding members',
  );
  return founders;
}
