/**
 * The whole configuration, checked before anything touches the data dir or a
 * port: a bad flag must never leave behind a data dir initialized from
 * defaults (which would later run as a cluster of its own).
 */
import type { CreatedWith } from '../storage/index.js';
import type { NodeConfig } from './config.js';
import { parseHostPort } from './config.js';
import { ServerError } from './errors.js';

/** Member names go into `--initial-cluster` (`name=url,…`) and the logs: no separators, no spaces. */
export const MEMBER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

function invalid(message: string): ServerError {
  return new ServerError('invalid_request', message);
}

function checkUrl(value: string, flag: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`${flag}: "${value}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalid(`${flag}: "${value}" must start with http:// or https://`);
  if (!url.hostname) throw invalid(`${flag}: "${value}" has no host`);
  return url;
}

function atLeast(value: number, min: number, flag: string): void {
  if (!Number.isSafeInteger(value) || value < min)
    throw invalid(`${flag} must be an integer of at least ${min}, got ${value}`);
}

/** scheme://host:port, with the scheme's default port made explicit, for comparing peer URLs. */
export function normalizePeerUrl(value: string): string {
  const url = new URL(value);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const host = url.hostname.toLowerCase();
  return `${url.protocol}//${host}:${port}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * Checks every setting, and the founder's own `--initial-cluster` entry
 * against what it listens on or advertises. `advertisePeerUrlGiven` says
 * whether the advertised peer URL was set or derived from --listen-peer.
 * Returns the config to run with: listening on a wildcard address with no
 * --advertise-peer-url, the member's own --initial-cluster entry is what it
 * advertises. Throws ServerError `invalid_request` naming the flag.
 */
export function checkConfig(config: NodeConfig, advertisePeerUrlGiven: boolean): NodeConfig {
  if (!MEMBER_NAME_PATTERN.test(config.name)) {
    throw invalid(
      `--name: "${config.name}" is not a member name (1–63 letters, digits, ".", "_" or "-", starting with a letter or digit)`,
    );
  }
  if (!config.dataDir) throw invalid('--data-dir must not be empty');
  const client = hostPort(config.listenClient, '--listen-client');
  const peer = hostPort(config.listenPeer, '--listen-peer');
  if (client.port !== 0 && client.port === peer.port && client.host === peer.host)
    throw invalid(`--listen-client and --listen-peer are both ${config.listenClient}`);
  checkUrl(config.advertiseClientUrl, '--advertise-client-url');
  checkUrl(config.advertisePeerUrl, '--advertise-peer-url');
  for (const [name, url] of config.initialCluster) {
    if (!MEMBER_NAME_PATTERN.test(name))
      throw invalid(`--initial-cluster: "${name}" is not a member name`);
    checkUrl(url, `--initial-cluster (member ${name})`);
  }
  if (!config.clusterName) throw invalid('--cluster-name must not be empty');
  atLeast(config.tickMs, 1, '--tick-ms');
  atLeast(config.heartbeatTicks, 1, '--heartbeat-ticks');
  atLeast(config.electionTicks, 2, '--election-ticks');
  if (config.electionTicks <= config.heartbeatTicks) {
    throw invalid(
      `--election-ticks (${config.electionTicks}) must be more than --heartbeat-ticks (${config.heartbeatTicks}), or followers start elections between heartbeats`,
    );
  }
  atLeast(config.snapshotCount, 1, '--snapshot-count');
  atLeast(config.snapshotCatchUpEntries, 0, '--snapshot-catch-up-entries');
  atLeast(config.autoCompactionRetentionHours, 0, '--auto-compaction-retention');
  atLeast(config.autoCompactionRevisions, 0, '--auto-compaction-revisions');
  atLeast(config.requestTimeoutMs, 1, '--request-timeout-ms');
  atLeast(config.authTokenTtlSeconds, 1, '--auth-token-ttl');
  atLeast(config.maxKeyBytes, 1, '--max-key-bytes');
  atLeast(config.maxValueBytes, 1, '--max-value-bytes');
  atLeast(config.maxTxnOps, 1, '--max-txn-ops');
  atLeast(config.maxPendingProposals, 1, '--max-pending-proposals');
  atLeast(config.maxPendingProposalBytes, 1, 'maxPendingProposalBytes');
  atLeast(config.quotaBytes, 0, '--quota-bytes');
  return checkOwnEntry(config, peer, advertisePeerUrlGiven);
}

function hostPort(value: string, flag: string): { host: string; port: number } {
  try {
    return parseHostPort(value, flag);
  } catch (err) {
    throw invalid((err as Error).message);
  }
}

/**
 * A founder's own --initial-cluster entry is how every other founder will
 * reach it, and part of its member id: it must be the URL it advertises
 * (which, unless set, is http(s)://<--listen-peer>).
 */
function checkOwnEntry(
  config: NodeConfig,
  peer: { host: string; port: number },
  advertisePeerUrlGiven: boolean,
): NodeConfig {
  const own = config.initialCluster.get(config.name);
  if (own === undefined) {
    if (config.initialCluster.size > 0 && !config.join) {
      throw invalid(
        `--initial-cluster does not list this member's --name "${config.name}": add ${config.name}=${config.advertisePeerUrl} to it, or fix --name`,
      );
    }
    return config;
  }
  if (!advertisePeerUrlGiven) {
    // Ephemeral port (port 0): what it will be is not known yet.
    if (peer.port === 0) return config;
    if (WILDCARD_HOSTS.has(peer.host)) {
      const ownPort = Number(new URL(normalizePeerUrl(own)).port);
      if (ownPort !== peer.port) {
        throw invalid(
          `--initial-cluster names ${config.name}=${own}, but this member listens for peers on port ${peer.port} (--listen-peer ${config.listenPeer})`,
        );
      }
      return { ...config, advertisePeerUrl: own };
    }
  }
  if (normalizePeerUrl(own) !== normalizePeerUrl(config.advertisePeerUrl)) {
    const source = advertisePeerUrlGiven
      ? `--advertise-peer-url ${config.advertisePeerUrl}`
      : `--listen-peer ${config.listenPeer} (so it advertises ${config.advertisePeerUrl})`;
    throw invalid(
      `--initial-cluster names ${config.name}=${own}, but this member listens on ${source}: ` +
        'the other members would look for it at the wrong address. Make them the same ' +
        '(--advertise-peer-url when the address others use differs from the one listened on)',
    );
  }
  return config;
}

/**
 * On a restart: `--initial-cluster`, when given, must name the members the
 * data dir was created with — all the founders, exactly; or, for a member
 * that joined, members of the cluster as it was then, itself included.
 * Membership changes since do not matter: this compares with the record of
 * the first start. Returns undefined when it agrees, otherwise what differs
 * and what to do.
 */
export function initialClusterMismatch(
  dataDir: string,
  name: string,
  recorded: CreatedWith,
  given: Map<string, string>,
): string | undefined {
  const was = new Map(Object.entries(recorded.members).map(([n, u]) => [n, normalizePeerUrl(u)]));
  const differences: string[] = [];
  for (const [member, url] of given) {
    if (!was.has(member)) differences.push(`${member} was not a member then`);
    else if (was.get(member) !== normalizePeerUrl(url))
      differences.push(`${member} was at ${recorded.members[member]}, not ${url}`);
  }
  if (recorded.how === 'founded') {
    for (const member of was.keys())
      if (!given.has(member)) differences.push(`founder ${member} is missing`);
  } else if (!given.has(name)) {
    differences.push(`this member (${name}) is missing`);
  }
  if (differences.length === 0) return undefined;
  const spec = Object.entries(recorded.members)
    .map(([n, u]) => `${n}=${u}`)
    .join(',');
  const origin =
    recorded.how === 'founded'
      ? `was created as a founder of the cluster --initial-cluster ${spec}`
      : `joined the cluster whose members were ${spec}`;
  const single = recorded.how === 'founded' && was.size === 1;
  return (
    `data dir ${dataDir} ${origin}, and --initial-cluster now names other members (${differences.join('; ')}). ` +
    'A data dir never runs as a different cluster: start it with the --initial-cluster it was created with, or leave the flag out' +
    (single
      ? `. If it was made by mistake as a cluster of one (a first start without the right flags) and has served no data, move ${dataDir} away and start again`
      : '. To found a new cluster, use a new --data-dir')
  );
}
