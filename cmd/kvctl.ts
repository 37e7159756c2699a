#!/usr/bin/env node
/**
 * kvctl — the command line client. Parses flags, calls src/client, prints.
 *
 * Exit codes: 0 ok; 1 not found, compare failed, txn not succeeded, or any
 * other API error; 2 usage error; 3 unavailable, timeout or connection failure.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  Client,
  type KeyValue,
  RaftkvError,
  type StatusResponse,
  type TxnOp,
  type TxnRequest,
  type TxnResponse,
  type WatchResponse,
} from '../src/client/index.js';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_UNAVAILABLE = 3;

const DEFAULT_ENDPOINT = 'http://127.0.0.1:7379';

type Format = 'table' | 'json';

interface GlobalOptions {
  endpoints: string;
  output: Format;
  timeout: number;
  retries: number;
}

/** A mistake on the command line that commander cannot see (bad JSON, bad endpoint). */
class UsageError extends Error {}

// ------------------------------------------------------------------ argument parsers

function integer(min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`not an integer: "${value}"`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`must be an integer ≥ ${min}`);
    return n;
  };
}

// ------------------------------------------------------------------ output

/** A table cell: control characters escaped so one value stays on one line. */
function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  return String(value).replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
    /[\u0000-\u001f\u007f]/g,
    (c) =>
      c === '\n'
        ? '\\n'
        : c === '\t'
          ? '\\t'
          : c === '\r'
            ? '\\r'
            : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function table(headers: string[], rows: unknown[][]): string {
  const text = rows.map((r) => r.map(cell));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cols: string[]) =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...text.map(line)].join('\n');
}

/** Two columns, field and value, for a single object. */
function fields(entries: [string, unknown][]): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${k.padEnd(width)}  ${cell(v)}`).join('\n');
}

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

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
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

// ------------------------------------------------------------------ running a command

function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

function makeClient(opts: GlobalOptions): Client {
  const endpoints = opts.endpoints
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (endpoints.length === 0) throw new UsageError('--endpoints: no endpoint given');
  try {
    return new Client({ endpoints, timeoutMs: opts.timeout, retries: opts.retries });
  } catch (err) {
    throw new UsageError(`--endpoints: ${(err as Error).message}`);
  }
}

/** Runs one command with a client; maps failures to kvctl's exit codes. */
async function run(
  cmd: Command,
  body: (client: Client, format: Format) => Promise<number | undefined>,
): Promise<void> {
  const opts = globals(cmd);
  let client: Client | undefined;
  try {
    client = makeClient(opts);
    process.exitCode = (await body(client, opts.output)) ?? EXIT_OK;
  } catch (err) {
    process.exitCode = report(err, opts.output);
  } finally {
    await client?.close();
  }
}

function report(err: unknown, format: Format): number {
  if (err instanceof UsageError) {
    process.stderr.write(`error: ${err.message}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof RaftkvError) {
    // json: the API's error body on stdout (one line), e.g. compare_failed's current kv.
    if (format === 'json' && typeof err.body === 'object' && err.body !== null)
      print(JSON.stringify(err.body));
    process.stderr.write(`error: ${err.code}: ${err.message}\n`);
    return err.code === 'unavailable' || err.code === 'timeout' ? EXIT_UNAVAILABLE : EXIT_FAILED;
  }
  process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
  return EXIT_FAILED;
}

async function readTxn(file: string | undefined): Promise<TxnRequest> {
  let text: string;
  try {
    if (file === undefined || file === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      text = Buffer.concat(chunks).toString('utf8');
    } else {
      text = readFileSync(file, 'utf8');
    }
  } catch (err) {
    throw new UsageError(`cannot read ${file ?? 'stdin'}: ${(err as Error).message}`);
  }
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

// ------------------------------------------------------------------ commands

function buildProgram(): Command {
  // `kvctl ls | head`: a closed pipe is the reader's choice, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = new Command('kvctl')
    .description('Command line client for raftkv (API.md over HTTP).')
    .addOption(
      new Option('--endpoints <urls>', 'comma-separated client URLs of the cluster')
        .env('KVCTL_ENDPOINTS')
        .default(DEFAULT_ENDPOINT),
    )
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .addOption(
      new Option('--timeout <ms>', 'timeout of each attempt, in milliseconds')
        .argParser(integer(1))
        .default(10_000),
    )
    .addOption(
      new Option('--retries <n>', 'retries (across endpoints) after a failed attempt')
        .argParser(integer(0))
        .default(3),
    )
    .showHelpAfterError('(run kvctl --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok; 1 not found, compare failed, txn not succeeded or other API error;\n' +
        '2 usage error; 3 unavailable, timeout or connection failure.',
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
    .description("write a key (put -- KEY VALUE when VALUE starts with '-')")
    .argument('<key>')
    .argument('<value>')
    .option('--lease <id>', 'attach the key to this lease')
    .option('--prev-revision <n>', 'only if the key is at this modRevision (0: absent)', integer(0))
    .option('--prev-value <value>', 'only if the key has this value')
    .action((key: string, value: string, o, cmd: Command) =>
      run(cmd, async (client, format) => {
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
      }),
    );

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
    .action((file: string | undefined, _o, cmd: Command) =>
      run(cmd, async (client, format) => {
        const request = await readTxn(file);
        const res = await client.txn(request);
        if (format === 'json') printJson(res);
        else print(txnTable(request, res));
        return res.succeeded ? EXIT_OK : EXIT_FAILED;
      }),
    );

  program
    .command('watch')
    .description('print changes to a key (or prefix) until interrupted')
    .argument('<key>')
    .option('--prefix', 'watch every key starting with KEY')
    .option('--from-revision <n>', 'replay history from this revision', integer(1))
    .option('--prev-kv', 'include the previous value of each key')
    .action((key: string, o, cmd: Command) =>
      run(cmd, async (client, format) => {
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
