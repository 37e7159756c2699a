/** Everything a node needs to start; cmd/raftkv.ts fills it from flags and environment variables. */
export interface NodeConfig {
  name: string;
  dataDir: string;
  /** host:port the client API listens on. */
  listenClient: string;
  /** host:port the peer (Raft) port listens on. */
  listenPeer: string;
  /** URL other members and clients use to reach this node's client API. */
  advertiseClientUrl: string;
  /** URL other members use to reach this node's peer port. */
  advertisePeerUrl: string;
  /** Founding members, name → peer URL. Ignored once the data dir is initialized. */
  initialCluster: Map<string, string>;
  /** Joins an existing cluster (after `POST /v1/cluster/members`) instead of founding one. */
  join: boolean;
  clusterName: string;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** Take a snapshot and compact the log after this many applied entries. */
  snapshotCount: number;
  /** Log entries kept behind a snapshot so slow followers catch up without one. */
  snapshotCatchUpEntries: number;
  /** Compact MVCC history older than this many hours (0 = never). */
  autoCompactionRetentionHours: number;
  /** Keep about this many revisions of MVCC history, between N and 2N (0 = no bound). */
  autoCompactionRevisions: number;
  requestTimeoutMs: number;
  maxKeyBytes: number;
  maxValueBytes: number;
  maxTxnOps: number;
  /** Proposals waiting to be applied before new writes get 429. */
  maxPendingProposals: number;
  /** Bytes of proposals waiting before new writes get 429. */
  maxPendingProposalBytes: number;
  /**
   * The space quota (README "Space quota"): state size in bytes above which this
   * member raises the nospace alarm. 0 = a share of the heap the node runs with.
   */
  quotaBytes: number;
  /** Lifetime of the tokens POST /v1/auth/token issues. */
  authTokenTtlSeconds: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Log lines on stdout as JSON (for collectors) or text (for people). */
  logFormat: 'json' | 'text';
  /** Client API over HTTPS: this certificate and key (PEM files, re-read when they change). */
  clientCertFile?: string;
  clientKeyFile?: string;
  /** Requires client certificates signed by this CA (mutual TLS on the client port). */
  clientCaFile?: string;
  /** All peer traffic over mutual TLS: this node's certificate (server and client use) and key. */
  peerCertFile?: string;
  peerKeyFile?: string;
  /** Peers must present a certificate signed by this CA, and are verified against it. */
  peerCaFile?: string;
  /** Serve plain HTTP even on a non-loopback address (secure by default otherwise). */
  insecure: boolean;
}

export const defaultConfig: Omit<NodeConfig, 'initialCluster'> = {
  name: 'default',
  dataDir: './raftkv-data',
  listenClient: '127.0.0.1:7379',
  listenPeer: '127.0.0.1:7380',
  advertiseClientUrl: 'http://127.0.0.1:7379',
  advertisePeerUrl: 'http://127.0.0.1:7380',
  join: false,
  clusterName: 'raftkv',
  tickMs: 100,
  electionTicks: 10,
  heartbeatTicks: 1,
  snapshotCount: 10_000,
  snapshotCatchUpEntries: 5_000,
  autoCompactionRetentionHours: 0,
  // History lives in memory (every version is also on disk, but reads and watch replays are
  // served from memory), so the default bound is sized for memory: between 10k and 20k
  // revisions cost about 4–8 MB at 256 B values, where 100k–200k cost 40–80 MB and made the
  // heap grow for the first 200k writes of any workload. It is a watch-resume window: a watcher
  // more than 10k revisions behind gets `compacted` and re-reads (etcd clients do the same
  // after etcd's compaction). Raise it, or use --auto-compaction-retention, for longer windows.
  autoCompactionRevisions: 10_000,
  requestTimeoutMs: 5_000,
  maxKeyBytes: 4096,
  maxValueBytes: 1024 * 1024,
  maxTxnOps: 128,
  maxPendingProposals: 10_000,
  maxPendingProposalBytes: 64 * 1024 * 1024,
  quotaBytes: 0,
  authTokenTtlSeconds: 300,
  logLevel: 'info',
  logFormat: 'json',
  insecure: false,
};

/** Parses `n1=http://127.0.0.1:7380,n2=...` into name → URL, rejecting duplicates and bad URLs. */
export function parseInitialCluster(spec: string): Map<string, string> {
  const members = new Map<string, string>();
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`--initial-cluster: "${part}" is not name=url`);
    const name = part.slice(0, eq);
    const url = part.slice(eq + 1);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`--initial-cluster: "${url}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new Error(`--initial-cluster: "${url}" must be http:// (or https:// with peer TLS)`);
    if (members.has(name)) throw new Error(`--initial-cluster: member "${name}" appears twice`);
    members.set(name, url.replace(/\/$/, ''));
  }
  return members;
}

/** Splits host:port, with a clear error. */
export function parseHostPort(value: string, flag: string): { host: string; port: number } {
  const i = value.lastIndexOf(':');
  const host = i > 0 ? value.slice(0, i) : '';
  const port = Number(value.slice(i + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${flag}: "${value}" is not host:port`);
  }
  return { host: host.replace(/^\[|\]$/g, ''), port };
}
