#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
/**
 * raftkv — the server. Parses flags (each also an environment variable
 * RAFTKV_<FLAG>), starts one node, stops gracefully on SIGTERM/SIGINT.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { restoreNode, startNode } from '../src/index.js';
import { UpgradeNeededError } from '../src/server/cluster-version.js';
import { defaultConfig, type NodeConfig, parseInitialCluster } from '../src/server/config.js';
import { foundersFromDiscovery } from '../src/server/discovery.js';
import { MemberRemovedError, ServerError } from '../src/server/errors.js';
import { logStop } from '../src/server/event-log.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_REMOVED,
  EXIT_UPGRADE_NEEDED,
} from '../src/server/exit-codes.js';
import {
  cgroupMemoryLimit,
  DEFAULT_HEAP_GROWING_PERCENT,
  type HeapPlan,
  parseByteSize,
  planHeap,
  setHeapGrowingPercent,
} from '../src/server/heap-tuning.js';
import { createLogger, LOG_FORMATS } from '../src/server/logger.js';
import { VERSION } from '../src/server/node.js';
import { StorageError } from '../src/storage/index.js';
import { readFileWithProgress, stepReporter } from './progress.js';

// `raftkv certs …` is a command of its own, with the X.509 library loaded only for it.
if (process.argv[2] === 'certs') {
  const { certsProgram } = await import('./certs-command.js');
  const { CertsError } = await import('../src/tls/certs.js');
  try {
    await certsProgram().parseAsync(process.argv.slice(3), { from: 'user' });
    process.exit(0);
  } catch (err) {
    if (err instanceof CertsError) console.error(`raftkv certs: ${err.message}`);
    else console.error('raftkv certs: failed:', err);
    process.exit(1);
  }
}

// The data dir and everything the server writes in it are for this user alone
// (LevelDB creates its files as the umask says): 0700 directories, 0600 files.
process.umask(0o077);

const program = new Command('raftkv')
  .description('A linearizable coordination service (KV, watches, leases) replicated with Raft.')
  .version(VERSION)
  .showHelpAfterError();

const intArg = (flag: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(`${flag} must be a non-negative integer, got "${value}"`);
  return n;
};

const byteSizeArg = (flag: string) => (value: string) => {
  try {
    return parseByteSize(value, flag);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const positiveIntArg = (flag: string) => (value: string) => {
  const n = intArg(flag)(value);
  if (n < 1) throw new InvalidArgumentError(`${flag} must be at least 1, got "${value}"`);
  return n;
};

function flag(
  spec: string,
  description: string,
  env: string,
  fallback?: unknown,
  parse?: (v: string) => unknown,
): Option {
  const option = new Option(spec, description).env(`RAFTKV_${env}`);
  if (parse) option.argParser(parse);
  if (fallback !== undefined) option.default(fallback);
  return option;
}

program
  .addOption(flag('--name <name>', "this member's name (unique in the cluster)", 'NAME', 'default'))
  .addOption(
    flag('--data-dir <dir>', 'where this member keeps its data', 'DATA_DIR', defaultConfig.dataDir),
  )
  .addOption(
    flag(
      '--listen-client <host:port>',
      'client API address',
      'LISTEN_CLIENT',
      defaultConfig.listenClient,
    ),
  )
  .addOption(
    flag(
      '--listen-peer <host:port>',
      'peer (Raft) address',
      'LISTEN_PEER',
      defaultConfig.listenPeer,
    ),
  )
  .addOption(
    flag(
      '--advertise-client-url <url>',
      'client URL told to others (default: http(s)://<listen-client>)',
      'ADVERTISE_CLIENT_URL',
    ),
  )
  .addOption(
    flag(
      '--advertise-peer-url <url>',
      'peer URL told to others (default: http(s)://<listen-peer>)',
      'ADVERTISE_PEER_URL',
    ),
  )
  .addOption(
    flag(
      '--initial-cluster <name=url,...>',
      'founding members and their peer URLs; ignored once the data dir exists (default: this member alone)',
      'INITIAL_CLUSTER',
    ),
  )
  .addOption(
    flag(
      '--discovery-srv <name>',
      'first start only, instead of --initial-cluster: find the founders in these DNS SRV records (a headless Service: _peer._tcp.<service>.<namespace>.svc.cluster.local)',
      'DISCOVERY_SRV',
    ),
  )
  .addOption(
    flag(
      '--discovery-expect <n>',
      'with --discovery-srv: how many founders to wait for',
      'DISCOVERY_EXPECT',
      undefined,
      positiveIntArg('--discovery-expect'),
    ),
  )
  .addOption(
    flag(
      '--discovery-timeout <seconds>',
      'with --discovery-srv: give up (exit 1) without all founders after this long',
      'DISCOVERY_TIMEOUT',
      300,
      positiveIntArg('--discovery-timeout'),
    ),
  )
  .addOption(
    flag(
      '--join',
      'first start of a member added with POST /v1/cluster/members: learn the cluster from the members in --initial-cluster instead of founding one',
      'JOIN',
    ),
  )
  .addOption(
    flag(
      '--cluster-name <name>',
      'cluster name; nodes of different clusters refuse each other',
      'CLUSTER_NAME',
      defaultConfig.clusterName,
    ),
  )
  .addOption(
    flag('--tick-ms <ms>', 'Raft tick', 'TICK_MS', defaultConfig.tickMs, intArg('--tick-ms')),
  )
  .addOption(
    flag(
      '--election-ticks <n>',
      'ticks without a leader before an election',
      'ELECTION_TICKS',
      defaultConfig.electionTicks,
      intArg('--election-ticks'),
    ),
  )
  .addOption(
    flag(
      '--heartbeat-ticks <n>',
      'ticks between heartbeats',
      'HEARTBEAT_TICKS',
      defaultConfig.heartbeatTicks,
      intArg('--heartbeat-ticks'),
    ),
  )
  .addOption(
    flag(
      '--snapshot-count <n>',
      'applied entries between snapshots (log compaction)',
      'SNAPSHOT_COUNT',
      defaultConfig.snapshotCount,
      intArg('--snapshot-count'),
    ),
  )
  .addOption(
    flag(
      '--snapshot-catch-up-entries <n>',
      'entries kept behind a snapshot for slow followers',
      'SNAPSHOT_CATCH_UP_ENTRIES',
      defaultConfig.snapshotCatchUpEntries,
      intArg('--snapshot-catch-up-entries'),
    ),
  )
  .addOption(
    flag(
      '--auto-compaction-retention <hours>',
      'compact MVCC history older than this (0 = never)',
      'AUTO_COMPACTION_RETENTION',
      defaultConfig.autoCompactionRetentionHours,
      intArg('--auto-compaction-retention'),
    ),
  )
  .addOption(
    flag(
      '--auto-compaction-revisions <n>',
      'keep between N and 2N revisions of MVCC history, which lives in memory (0 = no bound)',
      'AUTO_COMPACTION_REVISIONS',
      defaultConfig.autoCompactionRevisions,
      intArg('--auto-compaction-revisions'),
    ),
  )
  .addOption(
    flag(
      '--request-timeout-ms <ms>',
      'bound on a request (504 beyond it)',
      'REQUEST_TIMEOUT_MS',
      defaultConfig.requestTimeoutMs,
      intArg('--request-timeout-ms'),
    ),
  )
  .addOption(
    flag(
      '--auth-token-ttl <seconds>',
      'lifetime of the tokens POST /v1/auth/token issues',
      'AUTH_TOKEN_TTL',
      defaultConfig.authTokenTtlSeconds,
      positiveIntArg('--auth-token-ttl'),
    ),
  )
  .addOption(
    flag(
      '--max-key-bytes <n>',
      'largest key',
      'MAX_KEY_BYTES',
      defaultConfig.maxKeyBytes,
      intArg('--max-key-bytes'),
    ),
  )
  .addOption(
    flag(
      '--max-value-bytes <n>',
      'largest value',
      'MAX_VALUE_BYTES',
      defaultConfig.maxValueBytes,
      intArg('--max-value-bytes'),
    ),
  )
  .addOption(
    flag(
      '--max-txn-ops <n>',
      'most compares or ops per txn branch',
      'MAX_TXN_OPS',
      defaultConfig.maxTxnOps,
      intArg('--max-txn-ops'),
    ),
  )
  .addOption(
    flag(
      '--max-pending-proposals <n>',
      'writes in flight before 429',
      'MAX_PENDING_PROPOSALS',
      defaultConfig.maxPendingProposals,
      intArg('--max-pending-proposals'),
    ),
  )
  .addOption(
    flag(
      '--quota-bytes <size>',
      'space quota: over it this member raises the nospace alarm and writes that grow the state get 507 (bytes, or with a unit: 512MiB, 2GiB; default: 30 % of the heap limit)',
      'QUOTA_BYTES',
      undefined,
      byteSizeArg('--quota-bytes'),
    ),
  )
  .addOption(
    flag(
      '--memory-limit <size>',
      "memory this process may use: it sizes V8's heap to 75 % of it, re-executing itself once if needed (default: the cgroup's or machine's memory, which only ever lowers V8's default)",
      'MEMORY_LIMIT',
      undefined,
      byteSizeArg('--memory-limit'),
    ),
  )
  .addOption(
    flag(
      '--heap-growing-percent <n>',
      "V8 old-generation headroom over the live heap before a major GC, % (0 = V8's default)",
      'HEAP_GROWING_PERCENT',
      DEFAULT_HEAP_GROWING_PERCENT,
      intArg('--heap-growing-percent'),
    ),
  )
  .addOption(
    flag(
      '--client-cert-file <file>',
      'serve the client API over HTTPS with this certificate (PEM; re-read when it changes and on SIGHUP)',
      'CLIENT_CERT_FILE',
    ),
  )
  .addOption(flag('--client-key-file <file>', 'the key of --client-cert-file', 'CLIENT_KEY_FILE'))
  .addOption(
    flag(
      '--client-ca-file <file>',
      'require client certificates signed by this CA (mutual TLS on the client port)',
      'CLIENT_CA_FILE',
    ),
  )
  .addOption(
    flag(
      '--peer-cert-file <file>',
      "this node's certificate for all peer traffic, both TLS sides (mutual TLS; peer URLs are then https://)",
      'PEER_CERT_FILE',
    ),
  )
  .addOption(flag('--peer-key-file <file>', 'the key of --peer-cert-file', 'PEER_KEY_FILE'))
  .addOption(
    flag(
      '--peer-ca-file <file>',
      'peers must present a certificate signed by this CA, and are verified against it',
      'PEER_CA_FILE',
    ),
  )
  .addOption(
    flag(
      '--insecure',
      'allow plain HTTP on a non-loopback --listen-client or --listen-peer (refused otherwise)',
      'INSECURE',
    ),
  )
  .addOption(
    flag(
      '--log-level <level>',
      'fatal, error, warn, info, debug, trace or silent',
      'LOG_LEVEL',
      defaultConfig.logLevel,
    ).choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  )
  .addOption(
    flag(
      '--log-format <format>',
      'log lines on stdout: json (one object per line) or text (one readable line per event)',
      'LOG_FORMAT',
      defaultConfig.logFormat,
    ).choices(LOG_FORMATS),
  );

// `raftkv restore <backup> [flags]`: the same flags name the member and its cluster.
const restoring = process.argv[2] === 'restore';
if (restoring) {
  program
    .name('raftkv restore')
    .description(
      'Create --data-dir (missing or empty) from a backup saved from GET /v1/snapshot, as a founding ' +
        'member of a new cluster named by the other flags; run it for every founder with the same file, ' +
        'then start each member with the same flags as usual.',
    )
    .argument('<backup>', 'the backup file');
} else {
  program.addHelpText(
    'after',
    '\nRestore a backup: raftkv restore <backup> [the flags above] (see raftkv restore --help).' +
      '\nMake TLS certificates: raftkv certs create-ca|create-node|create-client (see raftkv certs --help).' +
      '\nSIGHUP re-reads the TLS certificate, key and CA files.',
  );
}
program.parse(restoring ? [...process.argv.slice(0, 2), ...process.argv.slice(3)] : process.argv);
const o = program.opts();

let config: Partial<NodeConfig>;
try {
  config = {
    name: o.name,
    dataDir: o.dataDir,
    listenClient: o.listenClient,
    listenPeer: o.listenPeer,
    // Left out: http(s)://<listen address>, https with TLS on that port (startNode decides).
    advertiseClientUrl: o.advertiseClientUrl,
    advertisePeerUrl: o.advertisePeerUrl,
    initialCluster: o.initialCluster ? parseInitialCluster(o.initialCluster) : new Map(),
    clusterName: o.clusterName,
    join: Boolean(o.join),
    tickMs: o.tickMs,
    electionTicks: o.electionTicks,
    heartbeatTicks: o.heartbeatTicks,
    snapshotCount: o.snapshotCount,
    snapshotCatchUpEntries: o.snapshotCatchUpEntries,
    autoCompactionRetentionHours: o.autoCompactionRetention,
    autoCompactionRevisions: o.autoCompactionRevisions,
    requestTimeoutMs: o.requestTimeoutMs,
    authTokenTtlSeconds: o.authTokenTtl,
    maxKeyBytes: o.maxKeyBytes,
    maxValueBytes: o.maxValueBytes,
    maxTxnOps: o.maxTxnOps,
    maxPendingProposals: o.maxPendingProposals,
    quotaBytes: o.quotaBytes ?? 0,
    logLevel: o.logLevel,
    logFormat: o.logFormat,
    clientCertFile: o.clientCertFile,
    clientKeyFile: o.clientKeyFile,
    clientCaFile: o.clientCaFile,
    peerCertFile: o.peerCertFile,
    peerKeyFile: o.peerKeyFile,
    peerCaFile: o.peerCaFile,
    insecure: Boolean(o.insecure),
  };
} catch (err) {
  console.error(`raftkv: ${(err as Error).message}`);
  process.exit(2);
}

// The one logger of this process: stdout carries only its lines, in the chosen format.
// `raftkv restore` is a command with an answer: that goes to stdout, its log to stderr.
const log = createLogger({
  member: o.name,
  level: o.logLevel,
  format: o.logFormat,
  ...(restoring ? { destination: process.stderr } : {}),
});

// The heap: V8's old-space limit is fixed at startup, so a process whose limit is not the one
// its memory calls for runs itself again, once, with --max-old-space-size (heap-tuning.ts).
const HEAP_CHILD_ENV = 'RAFTKV_HEAP_CHILD';
if (process.env[HEAP_CHILD_ENV] === '1') {
  // The parent forwards signals; if it dies (SIGKILL) this one must not outlive it holding the
  // data dir's lock: the IPC channel closes, and the process exits at once.
  process.on('disconnect', () => process.exit(EXIT_FAILURE));
  process.channel?.unref();
} else if (!restoring) {
  const plan: HeapPlan = planHeap({
    memoryLimitBytes: o.memoryLimit,
    cgroupLimitBytes: cgroupMemoryLimit((path) => {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return undefined;
      }
    }),
    totalMemoryBytes: totalmem(),
    heapSizeLimitBytes: getHeapStatistics().heap_size_limit,
    execArgv: process.execArgv,
    nodeOptions: process.env.NODE_OPTIONS,
  });
  if (plan.reexec) await runWithHeap(plan);
  log.debug({ heap: plan }, `heap: ${plan.reason}`);
}

// --discovery-srv: on a first start, the founders from DNS stand for --initial-cluster
// (for a restore too, which founds a cluster the same way).
if (o.discoverySrv) {
  try {
    config.initialCluster = await foundersFromDiscovery(
      config,
      {
        srvName: o.discoverySrv,
        expectMembers: o.discoveryExpect,
        timeoutMs: o.discoveryTimeout * 1000,
      },
      { log },
    );
  } catch (err) {
    console.error(`raftkv: ${(err as Error).message}`);
    process.exit(1);
  }
}

if (restoring) {
  try {
    const file = program.args[0]!;
    // On a terminal, what it is doing; nothing extra when stderr is a file or a pipe.
    const step = stepReporter(process.stderr, 'raftkv restore');
    step(`reading ${file}`);
    const backup = await readFileWithProgress(file, process.stderr);
    const header = await restoreNode(config, backup, log, step);
    console.log(
      `raftkv: restored ${file} (revision ${header.revision}, taken ${header.takenAt} from member ${header.memberId}) into ${config.dataDir} as member ${config.name}`,
    );
    process.exit(0);
  } catch (err) {
    console.error(`raftkv restore: ${(err as Error).message}`);
    process.exit(1);
  }
}

// Before the node loads its data: the heap limits V8 sets from then on follow it.
setHeapGrowingPercent(o.heapGrowingPercent);

// Certificate rotation: new connections use the new files; a refused file keeps the old ones.
// Installed before starting, so that a SIGHUP during startup does not end the process
// (the files are read as the node starts anyway).
let reloadTls: (() => void) | undefined;
process.on('SIGHUP', () => reloadTls?.());

try {
  const started = await startNode(config, { logger: log });
  started.node.onFatal((err) => {
    if (err instanceof UpgradeNeededError) {
      // The node logged which entry; an upgrade is the operator's to do, so say it on stderr too.
      logStop(log, 'upgrade_needed', { exitCode: EXIT_UPGRADE_NEEDED, message: err.message });
      console.error(`raftkv: ${err.message}`);
      process.exit(EXIT_UPGRADE_NEEDED);
    }
    logStop(log, 'fatal', { err, exitCode: EXIT_FAILURE });
    // A failed disk write (a full disk, a disk error) is the operator's to fix: say it on stderr too.
    if (err instanceof StorageError) console.error(`raftkv: ${err.message}`);
    process.exit(EXIT_FAILURE);
  });
  // Removed from the cluster: nothing left to serve. Stop (answering what is in flight), then exit.
  started.node.onRemoved((reason) => {
    logStop(log, 'removed', {
      exitCode: EXIT_REMOVED,
      message: `stopping: this member was removed from the cluster (${reason})`,
    });
    const force = setTimeout(() => process.exit(EXIT_REMOVED), 10_000);
    force.unref();
    void started.stop().finally(() => process.exit(EXIT_REMOVED));
  });
  log.info(
    {
      event: 'serving',
      version: VERSION,
      clientUrl: started.clientUrl,
      peerUrl: started.peerUrl,
    },
    `raftkv ${VERSION}: member ${config.name} serving clients on ${started.clientUrl}, peers on ${started.peerUrl}`,
  );
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logStop(log, 'signal', { signal });
    // Bounded: handoff, drain and the client port's grace, with a margin; exit 1 beyond it.
    const forceAfterMs = started.node.shutdownLimitMs + 5_000;
    const force = setTimeout(() => {
      log.error({ forceAfterMs }, 'the graceful shutdown did not finish in time; exiting now');
      process.exit(EXIT_FAILURE);
    }, forceAfterMs);
    force.unref();
    started.stop().then(
      () => {
        log.info({ event: 'stopped', signal }, 'stopped');
        process.exit(EXIT_OK);
      },
      (err) => {
        log.error({ err }, 'the graceful shutdown failed');
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  reloadTls = () => {
    log.info({ signal: 'SIGHUP' }, 'reloading the TLS files');
    void started.reloadTls();
  };
} catch (err) {
  // One line that says what is wrong, on stderr; the stack only at --log-level debug or trace.
  const known =
    err instanceof StorageError || err instanceof ServerError || err instanceof MemberRemovedError;
  console.error(`raftkv: ${known ? '' : 'failed to start: '}${(err as Error).message ?? err}`);
  if (!known && (o.logLevel === 'debug' || o.logLevel === 'trace')) console.error(err);
  process.exit(err instanceof MemberRemovedError ? EXIT_REMOVED : EXIT_FAILURE);
}

/** Runs this command again with the planned old space; exits with its exit code. */
async function runWithHeap(plan: HeapPlan): Promise<never> {
  log.info(
    {
      event: 'heap_sized',
      memoryBytes: plan.memoryBytes,
      source: plan.source,
      maxOldSpaceSizeMiB: plan.oldSpaceMiB,
    },
    `sizing the heap from ${plan.source} (${plan.memoryBytes} bytes): running again with --max-old-space-size=${plan.oldSpaceMiB}`,
  );
  const child = spawn(
    process.execPath,
    [...process.execArgv, `--max-old-space-size=${plan.oldSpaceMiB}`, ...process.argv.slice(1)],
    {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [HEAP_CHILD_ENV]: '1' },
    },
  );
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
    process.on(signal, () => child.kill(signal));
  return new Promise<never>(() => {
    child.on('exit', (code, signal) => {
      if (code !== null) process.exit(code);
      // Killed by a signal: die of the same one, so the caller sees what the child saw.
      process.removeAllListeners(signal ?? 'SIGTERM');
      process.kill(process.pid, signal ?? 'SIGTERM');
    });
    child.on('error', (err) => {
      console.error(`raftkv: could not run again with a sized heap: ${err.message}`);
      process.exit(EXIT_FAILURE);
    });
  });
}
