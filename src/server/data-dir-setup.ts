/**
 * The first start of a data dir, before a node runs on it: founding a cluster
 * (every member named by --initial-cluster), joining a running one (--join),
 * or founding one from a backup (`raftkv restore`).
 */
import { chmod, mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { KvStateMachine } from '../kv/state-machine.js';
import { LevelRaftStorage, type MemberRecord, type StorageIdentity } from '../storage/index.js';
import { type TlsMaterial, undiciConnect } from '../tls/index.js';
import { BackupError, type BackupHeader, decodeBackup } from './backup.js';
import { understoodKvCommands } from './cluster-version.js';
import type { NodeConfig } from './config.js';
import { initialClusterMismatch } from './config-check.js';
import { ServerError } from './errors.js';
import { PATH_CLUSTER_INFO } from './forwarder.js';
import { clusterIdFor, foundingMemberId, type Member } from './members.js';

/**
 * The data dir holds every key and value: it is created 0700, and an existing
 * one is tightened to 0700. (The files LevelDB makes inside follow the process
 * umask, which the raftkv command sets to 077.)
 */
export async function prepareDataDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700).catch(() => {}); // not ours to change (another owner): the dir's owner decides
}

/** The state machine's limits, from the node's flags. */
export function kvOptions(config: NodeConfig) {
  return {
    limits: {
      keyBytesMax: config.maxKeyBytes,
      valueBytesMax: config.maxValueBytes,
      txnOpsMax: config.maxTxnOps,
    },
    // A command of a newer raftkv stops apply (the node asks for an upgrade) instead of diverging.
    understoodCommands: understoodKvCommands(),
  };
}

/**
 * `raftkv restore`: makes `config.dataDir` (new or empty) a founding member of
 * a new cluster, as a first start would, whose KV state is the backup's —
 * keys, revisions, history, leases. Every founder is restored from the same
 * file with its own --name; then each starts normally. Returns the backup's header.
 */
export async function restoreDataDir(
  config: NodeConfig,
  backup: Uint8Array,
  log: Logger,
  onStep: (step: string) => void = () => {},
): Promise<BackupHeader> {
  let decoded: ReturnType<typeof decodeBackup>;
  onStep(`verifying the checksum of ${backup.length} bytes`);
  try {
    decoded = decodeBackup(backup);
  } catch (err) {
    if (err instanceof BackupError)
      throw new ServerError('invalid_request', `backup: ${err.message}`);
    throw err;
  }
  onStep(
    `checksum good: revision ${decoded.header.revision}, ${decoded.state.length} bytes of state`,
  );
  const target = path.resolve(config.dataDir);
  const existing = await readdir(target).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (existing && existing.length > 0) {
    throw new ServerError(
      'invalid_request',
      `data dir ${target} is not empty: restore into a new or empty directory`,
    );
  }
  // Built beside the target and renamed into place last, so a refused or
  // interrupted restore never leaves a data dir that would start as an empty cluster.
  const building = `${target}.restoring`;
  onStep(`writing the data dir in ${building}`);
  await rm(building, { recursive: true, force: true });
  let records = 0;
  try {
    await prepareDataDir(building);
    const storage = await LevelRaftStorage.open(building);
    try {
      await initializeIfNew(storage, { ...config, dataDir: building }, log);
      const index = storage.appliedIndex();
      let restored: KvStateMachine;
      try {
        restored = KvStateMachine.restore(decoded.state, index, kvOptions(config));
      } catch (err) {
        throw new ServerError(
          'invalid_request',
          `backup: its state does not load: ${(err as Error).message}`,
        );
      }
      const counted = function* (all: Iterable<[string, Uint8Array]>) {
        for (const record of all) {
          records++;
          yield record;
        }
      };
      await storage.replaceKv(counted(restored.records()), index, storage.initialState().confState);
    } finally {
      await storage.close();
    }
  } catch (err) {
    await rm(building, { recursive: true, force: true });
    throw err;
  }
  if (existing) await rmdir(target);
  await rename(building, target);
  onStep(`done: ${records} key-value records written, renamed into place as ${target}`);
  log.info({ ...decoded.header, dataDir: target }, 'restored a backup into a new data dir');
  return decoded.header;
}

/**
 * --join: the cluster id and this member's id come from the members named by
 * --initial-cluster (one that answers is enough); the member must have been
 * added with POST /v1/cluster/members under this --name and peer URL first.
 * It then starts empty, outside any configuration, until the leader sends it
 * a snapshot.
 */
async function askToJoin(
  config: NodeConfig,
  peerTls: TlsMaterial | undefined,
): Promise<{ clusterId: string; members: Member[]; self: Member }> {
  const ownPeerUrl = config.initialCluster.get(config.name) ?? config.advertisePeerUrl;
  const others = [...config.initialCluster].filter(([name]) => name !== config.name);
  if (others.length === 0) {
    throw new ServerError(
      'invalid_request',
      '--join needs --initial-cluster to name at least one member of the running cluster',
    );
  }
  const failures: string[] = [];
  // With peer TLS the members are asked over mutual TLS, as every other peer request.
  const dispatcher = peerTls ? new Agent({ connect: undiciConnect(peerTls) }) : undefined;
  try {
    for (const [name, url] of others) {
      const answer = await askOne(config, ownPeerUrl, url, dispatcher);
      if (typeof answer !== 'string') return answer;
      failures.push(`${name} (${url}): ${answer}`);
    }
  } finally {
    await dispatcher?.close().catch(() => {});
  }
  throw new ServerError(
    'unavailable',
    `--join: no member of --initial-cluster answered: ${failures.join('; ')}`,
  );
}

/** One member asked for the cluster's identity: the answer, or why it gave none. */
async function askOne(
  config: NodeConfig,
  ownPeerUrl: string,
  url: string,
  dispatcher: Agent | undefined,
): Promise<{ clusterId: string; members: Member[]; self: Member } | string> {
  try {
    const res = await request(`${url.replace(/\/+$/, '')}${PATH_CLUSTER_INFO}`, {
      signal: AbortSignal.timeout(3000),
      ...(dispatcher ? { dispatcher } : {}),
    });
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    const info = (await res.body.json()) as { clusterId: string; members: Member[] };
    const self = info.members.find(
      (m) => m.name === config.name && m.peerUrls.includes(ownPeerUrl),
    );
    if (!self) {
      throw new ServerError(
        'invalid_request',
        `the cluster at ${url} has no member "${config.name}" with peer URL ${ownPeerUrl}: ` +
          'add it first (POST /v1/cluster/members), then start it with --join',
      );
    }
    return { clusterId: info.clusterId, members: info.members, self };
  } catch (err) {
    if (err instanceof ServerError) throw err;
    const cause = (err as Error).cause as Error | undefined;
    return `${(err as Error).message}${cause?.message ? ` (${cause.message})` : ''}`;
  }
}

/**
 * A restart: the data dir already says which cluster it belongs to, and
 * `--initial-cluster`, when given, must agree (API.md: a data dir never runs
 * as a different cluster than its flags name).
 */
function checkRestartFlags(identity: StorageIdentity, config: NodeConfig, log: Logger): void {
  if (config.initialCluster.size === 0) return;
  const recorded = identity.createdWith;
  if (!recorded) {
    log.info(
      { dataDir: config.dataDir },
      'this data dir predates the record of its founding members: --initial-cluster is not checked against it',
    );
    return;
  }
  const mismatch = initialClusterMismatch(
    config.dataDir,
    config.name,
    recorded,
    config.initialCluster,
  );
  if (mismatch) throw new ServerError('invalid_request', mismatch);
  if (
    recorded.how === 'founded' &&
    clusterIdFor(config.clusterName, new Map(Object.entries(recorded.members))) !==
      identity.clusterId
  ) {
    throw new ServerError(
      'invalid_request',
      `data dir ${config.dataDir} was created with another --cluster-name than "${config.clusterName}": ` +
        'start it with the --cluster-name it was created with, or leave --initial-cluster out',
    );
  }
}

/** First start of a data dir: founding members get the bootstrap state, with the cluster's identity. */
export async function initializeIfNew(
  storage: LevelRaftStorage,
  config: NodeConfig,
  log: Logger,
  peerTls?: TlsMaterial,
): Promise<void> {
  const identity = storage.identity();
  if (identity) {
    if (identity.nodeName !== config.name) {
      throw new ServerError(
        'invalid_request',
        `data dir ${config.dataDir} belongs to member "${identity.nodeName}", not "${config.name}": ` +
          'start with --name ' +
          identity.nodeName +
          ' or use another --data-dir',
      );
    }
    checkRestartFlags(identity, config, log);
    return;
  }
  if (config.join) {
    const { clusterId, members, self } = await askToJoin(config, peerTls);
    const joined = Object.fromEntries(members.map((m) => [m.name, m.peerUrls[0] ?? '']));
    await storage.initialize({ clusterId, nodeId: self.id, nodeName: config.name }, undefined, {
      how: 'joined',
      members: joined,
    });
    await storage.saveMembers(members);
    log.info({ clusterId, nodeId: self.id }, 'joining: initialized a new data dir for the cluster');
    return;
  }
  const founders =
    config.initialCluster.size > 0
      ? config.initialCluster
      : new Map([[config.name, config.advertisePeerUrl]]);
  const ownPeerUrl = founders.get(config.name);
  if (!ownPeerUrl) {
    throw new ServerError(
      'invalid_request',
      `--initial-cluster does not list this member's --name "${config.name}"`,
    );
  }
  const clusterId = clusterIdFor(config.clusterName, founders);
  const members: MemberRecord[] = [...founders].map(([name, url]) => ({
    id: foundingMemberId(config.clusterName, name, url),
    name,
    peerUrls: [url],
    // Client URLs are learned through the log (memberAttributes), so every member sees the same table.
    clientUrls: [],
  }));
  const nodeId = foundingMemberId(config.clusterName, config.name, ownPeerUrl);
  await storage.initialize(
    { clusterId, nodeId, nodeName: config.name },
    members.map((m) => m.id),
    { how: 'founded', members: Object.fromEntries(founders) },
  );
  await storage.saveMembers(members);
  log.info({ clusterId, nodeId, members: members.length }, 'initialized a new data dir');
}
