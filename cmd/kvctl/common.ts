/**
 * What every kvctl command shares: exit codes, the global flags (endpoints,
 * output, timeouts, TLS files, user) and how they are read, building the
 * Client from them, and running a command under its deadline with the
 * printer of the chosen format, reporting its failure.
 *
 * The global flags are the program's options. Commander takes a program
 * option wherever it stands on the command line, so `kvctl -o json get k` and
 * `kvctl get k -o json` mean the same; for that to hold, no command declares
 * an option with a global flag's name (test/client/kvctl-program.test.ts
 * checks every command).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { Client, type ClientAuth, RaftkvError, tlsFromFiles } from '../../src/client/index.js';
import { askSecret, CredentialsError, resolveUser } from './credentials.js';
import { CommandDeadline, parseDuration } from './deadline.js';
import { FORMATS, type Format, type Printer, printerFor } from './printer.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNAVAILABLE = 3;

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:7379';
export const DEFAULT_TLS_ENDPOINT = 'https://127.0.0.1:7379';
/** --request-timeout's default: each attempt of each request. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** --command-timeout's default: fail fast (e.g. without a quorum), like etcdctl's 5 s. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;

export interface GlobalOptions {
  endpoints: string;
  /** Whether --endpoints or KVCTL_ENDPOINTS named the endpoints (not the default). */
  endpointsGiven: boolean;
  output: Format;
  /** Each attempt's timeout, in milliseconds (--request-timeout, or the old --timeout). */
  requestTimeout: number;
  /** The whole command's deadline, in milliseconds (0: none); see deadline.ts. */
  commandTimeout: number;
  retries: number;
  cacert?: string;
  cert?: string;
  key?: string;
  /** NAME or NAME:PASSWORD (--user, KVCTL_USER). */
  user?: string;
}

/** A mistake on the command line that commander cannot see (bad JSON, bad endpoint). */
export class UsageError extends Error {}

// ------------------------------------------------------------------ argument parsers

/** A duration flag's value: `5s`, `500ms`, `2m`, or milliseconds; at least `minMs` (0: none allowed). */
export function duration(minMs = 0) {
  return (value: string): number => {
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
    if (ms < minMs) throw new InvalidArgumentError(`must be at least ${minMs} ms`);
    return ms;
  };
}

export function integer(min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`not an integer: "${value}"`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`must be an integer ≥ ${min}`);
    return n;
  };
}

// ------------------------------------------------------------------ the global flags

/** The program: the command whose options are the global flags. */
function root(cmd: Command): Command {
  let at = cmd;
  while (at.parent) at = at.parent;
  return at;
}

/**
 * Whether the old global `--timeout` was on the command line. Everywhere it
 * is --request-timeout's old name, except on `lock`, where it always meant
 * the wait for the lock (now --wait-timeout): see lock.ts.
 */
export function legacyTimeoutGiven(cmd: Command): boolean {
  return root(cmd).getOptionValueSource('timeout') === 'cli';
}

/** The global flags as `cmd` sees them. */
export function globals(cmd: Command): GlobalOptions {
  const program = root(cmd);
  const o = program.opts();
  const requestGiven = program.getOptionValueSource('requestTimeout') === 'cli';
  const source = program.getOptionValueSource('endpoints');
  return {
    endpoints: o.endpoints,
    endpointsGiven: source === 'cli' || source === 'env',
    output: o.output,
    requestTimeout:
      !requestGiven && legacyTimeoutGiven(cmd) ? o.timeout : (o.requestTimeout as number),
    commandTimeout: o.commandTimeout,
    retries: o.retries,
    ...(o.cacert !== undefined ? { cacert: o.cacert } : {}),
    ...(o.cert !== undefined ? { cert: o.cert } : {}),
    ...(o.key !== undefined ? { key: o.key } : {}),
    ...(o.user !== undefined ? { user: o.user } : {}),
  };
}

/** The flags that mean the same for every command, wherever they stand on the command line. */
export function addGlobalOptions(program: Command): Command {
  return program
    .addOption(
      new Option('--endpoints <urls>', 'comma-separated client URLs of the cluster')
        .env('KVCTL_ENDPOINTS')
        .default(DEFAULT_ENDPOINT),
    )
    .addOption(
      new Option('-o, --output <format>', 'output format').choices(FORMATS).default('table'),
    )
    .addOption(
      new Option(
        '--command-timeout <duration>',
        'give up on a command after this long, every retry and failover included ' +
          '(e.g. 5s, 500ms, 2m, or milliseconds; 0: never); long-running commands: see below',
      )
        .env('KVCTL_COMMAND_TIMEOUT')
        .argParser(duration(0))
        .default(DEFAULT_COMMAND_TIMEOUT_MS, `${DEFAULT_COMMAND_TIMEOUT_MS / 1000}s`),
    )
    .addOption(
      new Option(
        '--request-timeout <duration>',
        'timeout of each attempt of each request (e.g. 10s, or milliseconds), within --command-timeout',
      )
        .argParser(duration(1))
        .default(DEFAULT_REQUEST_TIMEOUT_MS, `${DEFAULT_REQUEST_TIMEOUT_MS / 1000}s`),
    )
    .addOption(
      // The old name of --request-timeout (and, on `lock`, of --wait-timeout): kept working, not shown.
      new Option('--timeout <ms>').argParser(duration(1)).hideHelp(),
    )
    .addOption(
      new Option('--retries <n>', 'retries (across endpoints) after a failed attempt')
        .argParser(integer(0))
        .default(3),
    )
    .addOption(
      new Option(
        '--cacert <file>',
        'verify the servers with this CA certificate (PEM); implies https',
      ).env('KVCTL_CACERT'),
    )
    .addOption(
      new Option('--cert <file>', 'client certificate (PEM), for servers that require one').env(
        'KVCTL_CERT',
      ),
    )
    .addOption(new Option('--key <file>', 'key of --cert (PEM)').env('KVCTL_KEY'))
    .addOption(
      new Option(
        '--user <name[:password]>',
        'authenticate as this user; without :password, KVCTL_PASSWORD or a prompt on the terminal',
      ).env('KVCTL_USER'),
    );
}

// ------------------------------------------------------------------ running a command

/**
 * The Client the global flags describe. TLS files are read here (a file that
 * cannot be read is a usage error); with any of them, the default endpoint is
 * https. `--user NAME` without a password takes KVCTL_PASSWORD, or asks on
 * the terminal.
 */
export async function makeClient(opts: GlobalOptions, signal?: AbortSignal): Promise<Client> {
  const endpoints = endpointList(opts);
  if (endpoints.length === 0) throw new UsageError('--endpoints: no endpoint given');
  const withTls = opts.cacert !== undefined || opts.cert !== undefined || opts.key !== undefined;
  let tls: ReturnType<typeof tlsFromFiles> | undefined;
  if (withTls) {
    try {
      tls = tlsFromFiles({ caFile: opts.cacert, certFile: opts.cert, keyFile: opts.key });
    } catch (err) {
      throw new UsageError(`--cacert/--cert/--key: ${(err as Error).message}`);
    }
  }
  const auth: ClientAuth | undefined = await resolveUser(opts.user, process.env, askSecret);
  try {
    return new Client({
      endpoints,
      timeoutMs: opts.requestTimeout,
      retries: opts.retries,
      ...(tls ? { tls } : {}),
      ...(auth ? { auth } : {}),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    throw new UsageError(`--endpoints: ${(err as Error).message}`);
  }
}

/** The endpoints of --endpoints; the default one is https when any TLS file is given. */
export function endpointList(opts: GlobalOptions): string[] {
  const withTls = opts.cacert !== undefined || opts.cert !== undefined || opts.key !== undefined;
  const list =
    withTls && opts.endpoints === DEFAULT_ENDPOINT ? DEFAULT_TLS_ENDPOINT : opts.endpoints;
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A command's work: given the client, the printer and the deadline, its exit code. */
export type CommandBody = (
  client: Client,
  out: Printer,
  deadline: CommandDeadline,
) => Promise<number | undefined>;

/**
 * Runs one command with a client, under --command-timeout (armed once the
 * client is built, after any password prompt; a long-running command
 * disarms it for its normal life and arms it again to clean up, see
 * deadline.ts); maps failures to kvctl's exit codes.
 */
export async function run(
  cmd: Command,
  body: CommandBody,
  overrides: Partial<GlobalOptions> = {},
): Promise<void> {
  const opts = { ...globals(cmd), ...overrides };
  const deadline = new CommandDeadline(opts.commandTimeout);
  let client: Client | undefined;
  try {
    client = await makeClient(opts, deadline.signal);
    deadline.arm();
    process.exitCode = (await body(client, printerFor(opts.output), deadline)) ?? EXIT_OK;
  } catch (err) {
    process.exitCode = report(err, opts.output);
  } finally {
    deadline.disarm();
    await client?.close();
  }
}

/**
 * What each command group's register() gets: how to run a command. Tests
 * pass their own to see what a command line resolves to without a cluster.
 */
export interface CommandContext {
  run(cmd: Command, body: CommandBody, overrides?: Partial<GlobalOptions>): Promise<void>;
}

export const defaultContext: CommandContext = { run };

export function report(err: unknown, format: Format): number {
  if (err instanceof UsageError || err instanceof CredentialsError) {
    process.stderr.write(`error: ${err.message}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof RaftkvError) {
    // json: the API's error body on stdout (one line), e.g. compare_failed's current kv.
    if (format === 'json' && typeof err.body === 'object' && err.body !== null)
      process.stdout.write(`${JSON.stringify(err.body)}\n`);
    process.stderr.write(`error: ${err.code}: ${err.message}\n`);
    return err.code === 'unavailable' || err.code === 'timeout' || err.code === 'tls_failed'
      ? EXIT_UNAVAILABLE
      : EXIT_FAILED;
  }
  process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
  return EXIT_FAILED;
}

/** A line for the person at the terminal (stderr), never part of the output. */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}
