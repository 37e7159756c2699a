#!/usr/bin/env node
/**
 * kvctl — the command line client. Parses flags, calls src/client, prints.
 *
 * Exit codes: 0 ok; 1 not found, compare failed, txn not succeeded, or any
 * other API error; 2 usage error; 3 unavailable, timeout (including
 * --command-timeout) or connection failure (and: the lease of `registry
 * register`, `lease keepalive`, `elect` or a bare `lock` was lost).
 * `lock NAME -- command` exits with the command's code.
 */
import { spawn } from 'node:child_process';
import { rename, writeFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import {
  type Client,
  type ElectionLeader,
  isRaftkvError,
  type KeyValue,
  type LeaseKeeper,
  type Lock,
  type Member,
  RaftkvError,
  type RegistryEntry,
  type RegistryWatchResponse,
  type StatusResponse,
  type TxnOp,
  type TxnRequest,
  type TxnResponse,
  type WatchResponse,
} from '../src/client/index.js';
import { VERSION } from '../src/server/version.js';
import { addAuthCommands } from './kvctl/auth-commands.js';
import {
  addGlobalOptions,
  cell,
  DEFAULT_TIMEOUT_MS,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  EXIT_USAGE,
  fields,
  globals,
  integer,
  note,
  print,
  printJson,
  report,
  run,
  table,
  UsageError,
} from './kvctl/common.js';
import { decodeText, readFileBytes, readStdin, valueFrom } from './kvctl/value-input.js';

/** `lock` interrupted before it got the lock (128 + SIGINT). */
const EXIT_INTERRUPTED = 130;

function kvTable(kvs: KeyValue[], keysOnly = false): string {
  if (keysOnly)
    return table(
      ['KEY', 'VERSION', 'MOD-REV'],
      kvs.map((kv) => [kv.key, kv.version, kv.modRevision]),
    );
  return table(
    ['KEY', 'VALUE', 'VERSION', 'CREATE-REV', 'MOD-REV', 'LEASE'],
    kvs.map((kv) => [kv.key, kv.value, kv.version, kv.createRevision, kv.modRevision, kv.lease]),
  );
}

function txnTable(request: TxnRequest, res: TxnResponse): string {
  const ops: TxnOp[] = (res.succeeded ? request.success : request.failure) ?? [];
  const rows: unknown[][] = [];
  res.results.forEach((r, i) => {
    const key = ops[i]?.key;
    if (r.op === 'put') rows.push([i, 'put', r.kv.key, `version ${r.kv.version}`]);
    else if (r.op === 'delete') rows.push([i, 'delete', key, `deleted ${r.deleted}`]);
    else if (r.kvs.length === 0) rows.push([i, 'get', key, '(none)']);
    else for (const kv of r.kvs) rows.push([i, 'get', kv.key, kv.value]);
  });
  const head = fields([
    ['succeeded', res.succeeded],
    ['revision', res.revision],
  ]);
  return rows.length ? `${head}\n\n${table(['#', 'OP', 'KEY', 'RESULT'], rows)}` : head;
}

function statusFields(s: StatusResponse): string {
  return fields([
    ['id', s.id],
    ['name', s.name],
    ['role', s.role],
    ['leader', s.leader],
    ['term', s.term],
    ['commitIndex', s.commitIndex],
    ['appliedIndex', s.appliedIndex],
    ['revision', s.revision],
    ['compactRevision', s.compactRevision],
    ['members', s.members],
    ['dbSizeBytes', s.dbSizeBytes],
    ['stateSizeBytes', s.stateSizeBytes],
    ['quotaBytes', s.quotaBytes],
    ['alarms', s.alarms?.map((a) => `${a.alarm}:${a.memberId}`).join(',') || 'none'],
    ['version', s.version],
  ]);
}

function watchLines(change: WatchResponse): string {
  return change.events
    .map((e) => {
      const value = e.type === 'put' ? `  ${cell(e.kv.value)}` : '';
      const prev = e.prevKv ? `  (was ${cell(e.prevKv.value)})` : '';
      return `${change.revision}  ${e.type.padEnd(6)}  ${cell(e.kv.key)}${value}${prev}`;
    })
    .join('\n');
}

async function readTxn(file: string | undefined): Promise<TxnRequest> {
  const fromStdin = file === undefined || file === '-';
  const text = decodeText(
    fromStdin ? await readStdin() : await readFileBytes(file),
    fromStdin ? 'stdin' : file,
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`txn: invalid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new UsageError(
      'txn: expected a JSON object {"compare": [...], "success": [...], "failure": [...]}',
    );
  return parsed as TxnRequest;
}

// ------------------------------------------------------------------ coordination helpers

const DEFAULT_LEASE_TTL = 10;

function entryTable(entries: RegistryEntry[]): string {
  return table(
    ['NAME', 'VALUE', 'LEASE', 'CREATE-REV', 'MOD-REV'],
    entries.map((e) => [e.name, e.value, e.lease, e.createRevision, e.modRevision]),
  );
}

function registryLines(change: RegistryWatchResponse): string {
  return change.events
    .map((e) => {
      const value = e.type === 'put' ? `  ${cell(e.entry.value)}` : '';
      return `${change.revision}  ${e.type.padEnd(6)}  ${cell(e.entry.name)}${value}`;
    })
    .join('\n');
}

function leaderLine(revision: number, leader: ElectionLeader | null): string {
  return leader
    ? `${revision}  ${cell(leader.value)}  (key ${cell(leader.key)}, since revision ${leader.revision})`
    : `${revision}  (no leader)`;
}

/**
 * Resolves with the signal's name on SIGINT or SIGTERM (a ref'd timer keeps
 * the process alive meanwhile); dispose() removes the handlers.
 */
function interrupted(): { promise: Promise<NodeJS.Signals>; dispose(): void } {
  let resolve!: (signal: NodeJS.Signals) => void;
  const promise = new Promise<NodeJS.Signals>((r) => {
    resolve = r;
  });
  const onInt = () => resolve('SIGINT');
  const onTerm = () => resolve('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const hold = setInterval(() => {}, 1 << 30);
  return {
    promise,
    dispose() {
      clearInterval(hold);
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
    },
  };
}

/** Holds until interrupted (exit 0) or until the lease is lost (exit 3, with the reason). */
async function holdUntilInterruptedOrLost(
  stop: { promise: Promise<NodeJS.Signals> },
  lost: Promise<RaftkvError>,
): Promise<number> {
  const outcome = await Promise.race([stop.promise, lost]);
  if (outcome instanceof RaftkvError) {
    note(lostMessage(outcome));
    return EXIT_UNAVAILABLE;
  }
  return EXIT_OK;
}

/** A lease kept alive for the duration of a command, revoked at the end. */
async function heldLease(
  client: Client,
  ttl: number,
): Promise<{ id: string; keeper: LeaseKeeper; release(): Promise<void> }> {
  const grant = await client.grantLease(ttl);
  const keeper = client.keepLeaseAlive(grant.id, { ttlSeconds: grant.ttl });
  return {
    id: grant.id,
    keeper,
    async release() {
      await keeper.stop();
      try {
        await client.revokeLease(grant.id);
      } catch (err) {
        if (!isRaftkvError(err, 'lease_not_found')) throw err;
      }
    },
  };
}

function lostMessage(err: RaftkvError): string {
  return `error: lease lost: ${err.code}: ${err.message}`;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** Runs `command` with `env` until it exits; SIGTERMs it when `stop` resolves first. Its exit code. */
function runCommand(
  command: string[],
  env: Record<string, string>,
  stop: Promise<unknown>,
): Promise<number> {
  return new Promise<number>((resolve) => {
    const child = spawn(command[0]!, command.slice(1), {
      stdio: 'inherit',
      env: { ...process.env, ...env },
    });
    let done = false;
    child.on('error', (err) => {
      if (done) return;
      done = true;
      note(`error: cannot run ${command[0]}: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      if (done) return;
      done = true;
      resolve(code ?? 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 1) : 1));
    });
    void stop.then(() => {
      if (!done) child.kill('SIGTERM');
    });
  });
}

// ------------------------------------------------------------------ commands

function buildProgram(): Command {
  // `kvctl ls | head`: a closed pipe is the reader's choice, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = addGlobalOptions(
    new Command('kvctl')
      .description('Command line client for raftkv (API.md over HTTP).')
      .version(VERSION, '-V, --version', 'print the version of kvctl (the raftkv release)'),
  )
    .showHelpAfterError('(run kvctl --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      '\nValues: `put KEY -` reads the value from stdin, `put KEY --file F` from a file, byte for\n' +
        'byte (so `echo` adds a newline); it must be UTF-8 text (encode binary data, e.g. base64).\n' +
        'The same goes for `registry register NAME -` and `elect NAME -`.\n' +
        '\n--command-timeout (KVCTL_COMMAND_TIMEOUT, default 5s) bounds a whole command, every\n' +
        'retry and failover included, so it fails fast without a quorum. For watch, lease\n' +
        'keepalive, registry register, lock and elect it bounds the start (until the stream is\n' +
        'open, the lease granted, the name registered) and the clean-up, not the time between.\n' +
        '\nExit codes: 0 ok; 1 not found, compare failed, txn not succeeded or other API error;\n' +
        '2 usage error; 3 unavailable, timeout (--command-timeout too) or connection failure.',
    );

  program
    .command('get')
    .description('print a key')
    .argument('<key>')
    .option('--revision <n>', 'read as of this revision', integer(1))
    .addOption(
      new Option('--consistency <level>', 'read consistency').choices([
        'linearizable',
        'serializable',
      ]),
    )
    .option('--min-revision <n>', 'wait until the node has applied this revision', integer(1))
    .action((key: string, o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.get(key, {
          revision: o.revision,
          consistency: o.consistency,
          minRevision: o.minRevision,
        });
        if (format === 'json') printJson(res);
        else print(kvTable([res.kv]));
        return EXIT_OK;
      }),
    );

  program
    .command('put')
    .description(
      "write a key: VALUE, - to read it from stdin, or --file F (put -- KEY VALUE when VALUE starts with '-')",
    )
    .argument('<key>')
    .argument('[value]', 'the value; - reads it from stdin (all of it, byte for byte)')
    .option('--file <file>', 'read the value from this file (byte for byte)')
    .option('--lease <id>', 'attach the key to this lease')
    .option('--prev-revision <n>', 'only if the key is at this modRevision (0: absent)', integer(0))
    .option('--prev-value <value>', 'only if the key has this value')
    .action(async (key: string, arg: string | undefined, o, cmd: Command) => {
      const value = await valueFrom('put', arg, o.file);
      return run(cmd, async (client, format) => {
        const res = await client.put(key, value, {
          lease: o.lease,
          prevRevision: o.prevRevision,
          prevValue: o.prevValue,
        });
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['revision', res.revision],
              ['key', res.kv.key],
              ['version', res.kv.version],
              ['previous', res.prevKv ? res.prevKv.value : null],
            ]),
          );
        return EXIT_OK;
      });
    });

  program
    .command('del')
    .alias('delete')
    .description('delete a key, or every key under a prefix')
    .argument('<key>')
    .option('--prefix', 'delete every key starting with KEY')
    .option('--prev-revision <n>', 'only if the key is at this modRevision', integer(0))
    .action((key: string, o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.delete(key, {
          prefix: o.prefix === true,
          prevRevision: o.prevRevision,
        });
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['deleted', res.deleted],
              ['revision', res.revision],
            ]),
          );
        // Deleting a key that does not exist is "not found"; an empty prefix is fine.
        return res.deleted === 0 && o.prefix !== true ? EXIT_FAILED : EXIT_OK;
      }),
    );

  program
    .command('ls')
    .alias('list')
    .description('list keys in order')
    .argument('[prefix]', 'only keys starting with this', '')
    .option('--limit <n>', 'at most this many keys', integer(1))
    .option('--after <key>', 'continue a listing after this key')
    .option('--keys-only', 'omit values')
    .option('--revision <n>', 'list as of this revision', integer(1))
    .addOption(
      new Option('--consistency <level>', 'read consistency').choices([
        'linearizable',
        'serializable',
      ]),
    )
    .action((prefix: string, o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const keysOnly = o.keysOnly === true;
        const res = await client.list({
          prefix,
          limit: o.limit,
          after: o.after,
          keysOnly,
          revision: o.revision,
          consistency: o.consistency,
        });
        if (format === 'json') printJson(res);
        else {
          print(res.kvs.length ? kvTable(res.kvs, keysOnly) : '(no keys)');
          const last = res.kvs[res.kvs.length - 1];
          if (res.more && last)
            print(`(more keys: continue with --after ${JSON.stringify(last.key)})`);
        }
        return EXIT_OK;
      }),
    );

  program
    .command('txn')
    .description('run a transaction: API.md\'s JSON body {"compare", "success", "failure"}')
    .argument('[file]', 'JSON file; stdin when absent or "-"')
    .action(async (file: string | undefined, _o, cmd: Command) => {
      const request = await readTxn(file);
      return run(cmd, async (client, format) => {
        const res = await client.txn(request);
        if (format === 'json') printJson(res);
        else print(txnTable(request, res));
        return res.succeeded ? EXIT_OK : EXIT_FAILED;
      });
    });

  program
    .command('watch')
    .description('print changes to a key (or prefix) until interrupted')
    .argument('<key>')
    .option('--prefix', 'watch every key starting with KEY')
    .option('--from-revision <n>', 'replay history from this revision', integer(1))
    .option('--prev-kv', 'include the previous value of each key')
    .action((key: string, o, cmd: Command) =>
      run(cmd, async (client, format, deadline) => {
        const controller = new AbortController();
        const stop = () => controller.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          const watch = client.watch(key, {
            prefix: o.prefix === true,
            fromRevision: o.fromRevision,
            prevKv: o.prevKv === true,
            signal: controller.signal,
            // Open: from here on the watch lives until interrupted (reconnecting on its own).
            onOpen: () => deadline.disarm(),
          });
          for await (const change of watch) {
            // One JSON object per line, so the output can be consumed as a stream.
            if (format === 'json') print(JSON.stringify(change));
            else print(watchLines(change));
          }
        } finally {
          process.removeListener('SIGINT', stop);
          process.removeListener('SIGTERM', stop);
        }
        return EXIT_OK;
      }),
    );

  program
    .command('status')
    .description("a node's status (the first endpoint that answers, or each with --all)")
    .option('--all', 'ask every endpoint')
    .action((o, cmd: Command) =>
      run(cmd, async (client, format) => {
        if (!o.all) {
          const res = await client.status();
          if (format === 'json') printJson(res);
          else print(statusFields(res));
          return EXIT_OK;
        }
        const results = await Promise.all(
          client.endpoints.map(async (endpoint) => {
            try {
              return { endpoint, status: await client.status({ endpoint }) };
            } catch (err) {
              const e = err as RaftkvError;
              return { endpoint, error: { code: e.code, message: e.message } };
            }
          }),
        );
        if (format === 'json') printJson(results);
        else
          print(
            table(
              ['ENDPOINT', 'NAME', 'ID', 'ROLE', 'TERM', 'APPLIED', 'REVISION', 'ERROR'],
              results.map((r) =>
                r.status
                  ? [
                      r.endpoint,
                      r.status.name,
                      r.status.id,
                      r.status.role,
                      r.status.term,
                      r.status.appliedIndex,
                      r.status.revision,
                      '',
                    ]
                  : [r.endpoint, '', '', '', '', '', '', `${r.error?.code}: ${r.error?.message}`],
              ),
            ),
          );
        return results.every((r) => r.status) ? EXIT_OK : EXIT_UNAVAILABLE;
      }),
    );

  program
    .command('members')
    .description('list the cluster members')
    .action((_o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.members();
        if (format === 'json') printJson(res);
        else
          print(
            table(
              ['ID', 'NAME', 'ROLE', 'LEADER', 'PEER-URLS', 'CLIENT-URLS'],
              res.members.map((m) => [
                m.id,
                m.name,
                m.role,
                m.id === res.leader ? '*' : '',
                m.peerUrls.join(','),
                m.clientUrls.join(','),
              ]),
            ),
          );
        return EXIT_OK;
      }),
    );

  const member = program
    .command('member')
    .description('add, promote and remove members (one change at a time)');
  const printMember = (format: string, m: Member) => {
    if (format === 'json') printJson(m);
    else
      print(
        fields([
          ['id', m.id],
          ['name', m.name],
          ['role', m.role],
          ['peerUrls', m.peerUrls.join(',')],
          ['clientUrls', m.clientUrls.join(',')],
        ]),
      );
  };

  member
    .command('add')
    .description('add a member, then start it with `raftkv --join` (--learner: promote it later)')
    .argument('<name>', "the new member's --name")
    .argument('<peer-url>', 'its peer URL, e.g. http://10.0.0.4:7380')
    .argument('<client-url>', 'its client URL, e.g. http://10.0.0.4:7379')
    .option('--learner', 'add it as a learner: it replicates but does not vote until promoted')
    .action(
      (name: string, peerUrl: string, clientUrl: string, o: { learner?: boolean }, cmd: Command) =>
        run(cmd, async (client, format) => {
          printMember(
            format,
            await client.addMember({ name, peerUrl, clientUrl, learner: Boolean(o.learner) }),
          );
          return EXIT_OK;
        }),
    );

  member
    .command('promote')
    .description('make a learner a voter')
    .argument('<member-id>', 'see `kvctl members`')
    .action((id: string, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        printMember(format, await client.promoteMember(id));
        return EXIT_OK;
      }),
    );

  member
    .command('remove')
    .description('remove a member from the cluster (then stop its process)')
    .argument('<member-id>', 'see `kvctl members`')
    .action((id: string, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.removeMember(id);
        if (format === 'json') printJson(res);
        else print(fields([['removed', res.id]]));
        return EXIT_OK;
      }),
    );

  program
    .command('snapshot')
    .description("save a backup of the cluster's data to a file (restore it with `raftkv restore`)")
    .argument('<file>', 'where to write it (replaced if it exists)')
    .action((file: string, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const bytes = await client.snapshot();
        // Written beside the target, then renamed: never half a backup under the real name.
        await writeFile(`${file}.part`, bytes);
        await rename(`${file}.part`, file);
        const res = { file, bytes: bytes.length };
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['file', file],
              ['bytes', bytes.length],
            ]),
          );
        return EXIT_OK;
      }),
    );

  program
    .command('move-leader')
    .description('hand leadership to a member (by id), or to the most caught-up voter')
    .argument('[member-id]', 'the member to lead next (see `kvctl members`)')
    .action((to: string | undefined, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.moveLeader(to);
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['leader', res.leader],
              ['term', res.term],
            ]),
          );
        return EXIT_OK;
      }),
    );

  program
    .command('compact')
    .description('drop history before a revision')
    .argument('<revision>', 'first revision to keep', integer(1))
    .action((revision: number, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.compact(revision);
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['revision', res.revision],
              ['compactRevision', res.compactRevision],
            ]),
          );
        return EXIT_OK;
      }),
    );

  const alarm = program
    .command('alarm')
    .description("list and disarm the cluster's alarms (nospace: the space quota is exceeded)");

  alarm
    .command('list')
    .description('list the active alarms (exit 0 also when there are none)')
    .action((_o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.alarms();
        if (format === 'json') printJson(res);
        else if (res.alarms.length === 0) print('no active alarms');
        else
          print(
            table(
              ['MEMBER-ID', 'ALARM'],
              res.alarms.map((a) => [a.memberId, a.alarm]),
            ),
          );
        return EXIT_OK;
      }),
    );

  alarm
    .command('disarm')
    .description(
      "clear the nospace alarms (every member's, or one with --member); a member still over its quota raises it again",
    )
    .option('--member <member-id>', "only this member's alarm")
    .action((o: { member?: string }, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.disarmAlarms(o.member === undefined ? {} : { memberId: o.member });
        if (format === 'json') printJson(res);
        else
          print(
            res.disarmed.length === 0
              ? 'no alarm to disarm'
              : `disarmed ${res.disarmed.map((a) => `${a.alarm} of ${a.memberId}`).join(', ')}`,
          );
        return EXIT_OK;
      }),
    );

  // ---------------------------------------------------------------- leases

  const lease = program
    .command('lease')
    .description('grant, keep alive, revoke and inspect leases');

  lease
    .command('grant')
    .description('grant a lease and print its id')
    .argument('<ttl>', 'time to live, in seconds', integer(1))
    .option('--id <id>', 'choose the lease id')
    .action((ttl: number, o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.grantLease(ttl, o.id !== undefined ? { id: o.id } : {});
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['id', res.id],
              ['ttl', res.ttl],
            ]),
          );
        return EXIT_OK;
      }),
    );

  lease
    .command('keepalive')
    .description('keep a lease alive until interrupted (exit 3 if it is lost), or renew it once')
    .argument('<id>')
    .option('--once', 'renew once and exit')
    .action((id: string, o, cmd: Command) =>
      run(cmd, async (client, format, deadline) => {
        const first = await client.keepAlive(id);
        // Renewed once: keeping it alive is this command's normal life (lost TTL ends it).
        deadline.disarm();
        if (format === 'json') print(JSON.stringify(first));
        else
          print(
            fields([
              ['id', first.id],
              ['ttl', first.ttl],
            ]),
          );
        if (o.once) return EXIT_OK;
        const stop = interrupted();
        const keeper = client.keepLeaseAlive(id, { ttlSeconds: first.ttl });
        try {
          return await holdUntilInterruptedOrLost(stop, keeper.lost);
        } finally {
          stop.dispose();
          await keeper.stop();
        }
      }),
    );

  lease
    .command('revoke')
    .description('revoke a lease (deleting its keys)')
    .argument('<id>')
    .action((id: string, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.revokeLease(id);
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['revoked', res.revoked],
              ['deleted', res.deleted],
            ]),
          );
        return EXIT_OK;
      }),
    );

  lease
    .command('get')
    .description("a lease's TTL, remaining time and keys")
    .argument('<id>')
    .action((id: string, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.lease(id);
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['id', res.id],
              ['ttl', res.ttl],
              ['remaining', res.remaining],
              ['keys', res.keys.join(', ')],
            ]),
          );
        return EXIT_OK;
      }),
    );

  lease
    .command('ls')
    .alias('list')
    .description('list the live leases')
    .action((_o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const leases = await client.leases();
        if (format === 'json') printJson({ leases });
        else
          print(
            leases.length
              ? table(
                  ['ID', 'TTL', 'REMAINING'],
                  leases.map((l) => [l.id, l.ttl, l.remaining]),
                )
              : '(no leases)',
          );
        return EXIT_OK;
      }),
    );

  // ---------------------------------------------------------------- registry

  const registry = program
    .command('registry')
    .description('unique names owned by leases (service discovery)');

  registry
    .command('register')
    .description(
      'register NAME with a new lease, keep it until interrupted, then revoke it (exit 1 if taken, 3 if the lease is lost)',
    )
    .argument('<name>')
    .argument('[value]', 'its value; - reads it from stdin')
    .option('--file <file>', 'read the value from this file')
    .option('--ttl <s>', 'TTL of the lease, in seconds', integer(1), DEFAULT_LEASE_TTL)
    .action(async (name: string, arg: string | undefined, o, cmd: Command) => {
      const value = await valueFrom('registry register', arg, o.file);
      return run(cmd, async (client, format, deadline) => {
        const held = await heldLease(client, o.ttl);
        const stop = interrupted();
        try {
          let entry: RegistryEntry;
          try {
            entry = await client.register(name, value, held.id);
          } catch (err) {
            if (isRaftkvError(err, 'name_taken')) {
              const holder = err.entry as RegistryEntry | null | undefined;
              note(
                `error: name_taken: "${name}" is held by lease ${holder?.lease ?? '?'}` +
                  (holder ? ` (value ${JSON.stringify(holder.value)})` : ''),
              );
              return EXIT_FAILED;
            }
            throw err;
          }
          if (format === 'json') print(JSON.stringify(entry));
          else print(`registered ${cell(entry.name)} = ${cell(entry.value)} (lease ${held.id})`);
          deadline.disarm();
          return await holdUntilInterruptedOrLost(stop, held.keeper.lost);
        } finally {
          stop.dispose();
          deadline.arm();
          await held.release();
        }
      });
    });

  registry
    .command('lookup')
    .description('print the entry of a name')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const entry = await client.lookup(name);
        if (format === 'json') printJson(entry);
        else print(entryTable([entry]));
        return EXIT_OK;
      }),
    );

  registry
    .command('ls')
    .alias('list')
    .description('list registered names')
    .argument('[prefix]', 'only names starting with this', '')
    .action((prefix: string, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.registry(prefix);
        if (format === 'json') printJson(res);
        else print(res.entries.length ? entryTable(res.entries) : '(no entries)');
        return EXIT_OK;
      }),
    );

  registry
    .command('watch')
    .description('print registry changes under a prefix until interrupted')
    .argument('[prefix]', 'only names starting with this', '')
    .option('--from-revision <n>', 'replay history from this revision', integer(1))
    .action((prefix: string, o, cmd: Command) =>
      run(cmd, async (client, format, deadline) => {
        const controller = new AbortController();
        const stop = interrupted();
        void stop.promise.then(() => controller.abort());
        try {
          const watch = client.watchRegistry(prefix, {
            ...(o.fromRevision !== undefined ? { fromRevision: o.fromRevision } : {}),
            signal: controller.signal,
            onOpen: () => deadline.disarm(),
          });
          for await (const change of watch) {
            if (format === 'json') print(JSON.stringify(change));
            else print(registryLines(change));
          }
        } finally {
          stop.dispose();
        }
        return EXIT_OK;
      }),
    );

  registry
    .command('unregister')
    .description('remove a name (only if LEASE owns it, with --lease)')
    .argument('<name>')
    .option('--lease <id>', 'only if this lease owns the name')
    .action((name: string, o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const res = await client.unregister(name, o.lease !== undefined ? { lease: o.lease } : {});
        if (format === 'json') printJson(res);
        else
          print(
            fields([
              ['deleted', res.deleted],
              ['revision', res.revision],
            ]),
          );
        return EXIT_OK;
      }),
    );

  // ---------------------------------------------------------------- locks

  program
    .command('lock')
    .description(
      'acquire a lock (with a new lease kept alive) and hold it until interrupted, or run a command while holding it (lock NAME -- command args...)',
    )
    .argument('<name>')
    .argument('[command...]', 'command to run while holding the lock')
    .option('--ttl <s>', 'TTL of the lease, in seconds', integer(1), DEFAULT_LEASE_TTL)
    .option(
      '--timeout <ms>',
      "give up waiting for the lock after this long (here, not each request's timeout)",
      integer(0),
    )
    .addHelpText(
      'after',
      '\nThe command gets RAFTKV_LOCK_NAME, RAFTKV_LOCK_KEY (the holder key, URI-encoded) and\n' +
        'RAFTKV_FENCING_TOKEN in its environment, and SIGTERM if the lease is lost. kvctl then\n' +
        "releases the lock, revokes the lease and exits with the command's exit code.\n" +
        'Exit 1 on lock_timeout; 130 if interrupted while waiting.',
    )
    .action((name: string, command: string[], o, cmd: Command) => {
      // kvctl's global --timeout (each request's timeout) takes `--timeout` wherever it is on
      // the command line: for `lock` it means the lock wait, and requests keep the default.
      const fromCli = cmd.parent?.getOptionValueSource('timeout') === 'cli';
      const waitMs: number | undefined = o.timeout ?? (fromCli ? globals(cmd).timeout : undefined);
      return run(
        cmd,
        async (client, format, deadline) => {
          const held = await heldLease(client, o.ttl);
          // Waiting in line (bounded by the lock's own --timeout) and holding are the normal life.
          deadline.disarm();
          const stop = interrupted();
          try {
            // Interrupted while waiting in line: give up (the lease's revocation leaves the line).
            const waiting = new AbortController();
            void stop.promise.then(() => waiting.abort());
            let lock: Lock;
            try {
              lock = await Promise.race([
                client.lock(name, {
                  lease: held.id,
                  signal: waiting.signal,
                  ...(waitMs !== undefined ? { timeoutMs: waitMs } : {}),
                }),
                held.keeper.lost.then((err) => Promise.reject(err)),
              ]);
            } catch (err) {
              if (waiting.signal.aborted) {
                note(`kvctl: interrupted while waiting for lock ${name}`);
                return EXIT_INTERRUPTED;
              }
              throw err;
            }
            if (command.length === 0) {
              if (format === 'json') print(JSON.stringify(lock));
              else
                print(
                  fields([
                    ['name', lock.name],
                    ['key', lock.key],
                    ['fencingToken', lock.fencingToken],
                  ]),
                );
            } else {
              note(`kvctl: holding lock ${lock.name}, fencing token ${lock.fencingToken}`);
            }
            let lost: RaftkvError | undefined;
            void held.keeper.lost.then((err) => {
              lost = err;
              note(lostMessage(err));
            });
            let code: number;
            if (command.length > 0) {
              code = await runCommand(
                command,
                {
                  RAFTKV_LOCK_NAME: lock.name,
                  // Holder keys start with a NUL byte, which an environment cannot carry.
                  RAFTKV_LOCK_KEY: encodeURIComponent(lock.key),
                  RAFTKV_FENCING_TOKEN: String(lock.fencingToken),
                },
                Promise.race([stop.promise, held.keeper.lost]),
              );
            } else {
              await Promise.race([stop.promise, held.keeper.lost]);
              code = lost ? EXIT_UNAVAILABLE : EXIT_OK;
            }
            deadline.arm();
            if (!lost) {
              try {
                await client.unlock(name, lock.key);
              } catch (err) {
                note(`warning: unlock: ${(err as Error).message}`);
              }
            }
            return code;
          } finally {
            stop.dispose();
            deadline.arm();
            await held.release();
          }
        },
        fromCli ? { timeout: DEFAULT_TIMEOUT_MS } : {},
      );
    });

  // ---------------------------------------------------------------- elections

  program
    .command('elect')
    .description(
      'campaign in an election with VALUE and hold leadership until interrupted (then resign); with --observe, print leader changes',
    )
    .argument('<name>')
    .argument('[value]', "this candidate's value, - to read it from stdin (not with --observe)")
    .option('--file <file>', "read this candidate's value from this file")
    .option('--observe', 'print the leader and each change until interrupted')
    .option('--ttl <s>', 'TTL of the lease, in seconds', integer(1), DEFAULT_LEASE_TTL)
    .action(async (name: string, arg: string | undefined, o, cmd: Command) => {
      if (o.observe && (arg !== undefined || o.file !== undefined))
        throw new UsageError('elect --observe takes no VALUE');
      const value = o.observe ? undefined : await valueFrom('elect', arg, o.file);
      return run(cmd, async (client, format, deadline) => {
        const stop = interrupted();
        const controller = new AbortController();
        void stop.promise.then(() => controller.abort());
        try {
          if (value === undefined) {
            const changes = client.observe(name, {
              signal: controller.signal,
              onOpen: () => deadline.disarm(),
            });
            for await (const change of changes) {
              if (format === 'json') print(JSON.stringify(change));
              else print(leaderLine(change.revision, change.leader));
            }
            return EXIT_OK;
          }
          const held = await heldLease(client, o.ttl);
          // Campaigning (waiting to lead) and leading are the normal life.
          deadline.disarm();
          try {
            const lostSignal = held.keeper.lost.then((err) => {
              controller.abort();
              return err;
            });
            let leader: ElectionLeader | undefined;
            while (!controller.signal.aborted && leader === undefined) {
              try {
                leader = (
                  await client.campaign(name, {
                    lease: held.id,
                    value,
                    timeoutMs: 60_000,
                    signal: controller.signal,
                  })
                ).leader;
              } catch (err) {
                if (controller.signal.aborted) break;
                if (isRaftkvError(err, 'lock_timeout')) continue;
                throw err;
              }
            }
            if (leader !== undefined) {
              if (format === 'json') print(JSON.stringify({ elected: true, leader }));
              else
                print(`elected: ${cell(name)} = ${cell(leader.value)} (key ${cell(leader.key)})`);
              await Promise.race([stop.promise, lostSignal]);
            }
            const lost = await Promise.race([lostSignal, Promise.resolve(undefined)]);
            if (lost) {
              note(lostMessage(lost));
              return EXIT_UNAVAILABLE;
            }
            deadline.arm();
            if (leader !== undefined) {
              try {
                await client.resign(name, leader.key);
              } catch (err) {
                note(`warning: resign: ${(err as Error).message}`);
              }
            }
            return EXIT_OK;
          } finally {
            deadline.arm();
            await held.release();
          }
        } finally {
          stop.dispose();
        }
      });
    });

  addAuthCommands(program);

  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    return report(err, 'table');
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
}

process.exitCode = await main(process.argv);
