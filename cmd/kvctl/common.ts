/**
 * What every kvctl command shares: exit codes, the global flags (endpoints,
 * output, timeouts, TLS files, user), building the Client from them, running
 * a command under its deadline and reporting its failure, and the
 * table/JSON output helpers.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { Client, type ClientAuth, RaftkvError, tlsFromFiles } from '../../src/client/index.js';
import { askSecret, CredentialsError, resolveUser } from './credentials.js';
import { CommandDeadline, parseDuration } from './deadline.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNAVAILABLE = 3;

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:7379';
export const DEFAULT_TLS_ENDPOINT = 'https://127.0.0.1:7379';
export const DEFAULT_TIMEOUT_MS = 10_000;
/** --command-timeout's default: fail fast (e.g. without a quorum), like etcdctl's 5 s. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;

export type Format = 'table' | 'json';

export interface GlobalOptions {
  endpoints: string;
  output: Format;
  timeout: number;
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

/** A --command-timeout value: `5s`, `500ms`, `2m`, or milliseconds; 0 for none. */
export function duration(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
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

// ------------------------------------------------------------------ output

/** A table cell: control characters escaped so one value stays on one line. */
export function cell(value: unknown): string {
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

export function table(headers: string[], rows: unknown[][]): string {
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
export function fields(entries: [string, unknown][]): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${k.padEnd(width)}  ${cell(v)}`).join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

// ------------------------------------------------------------------ running a command

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/**
 * The Client the global flags describe. TLS files are read here (a file that
 * cannot be read is a usage error); with any of them, the default endpoint is
 * https. `--user NAME` without a password takes KVCTL_PASSWORD, or asks on
 * the terminal.
 */
export async function makeClient(opts: GlobalOptions, signal?: AbortSignal): Promise<Client> {
  const withTls = opts.cacert !== undefined || opts.cert !== undefined || opts.key !== undefined;
  const list =
    withTls && opts.endpoints === DEFAULT_ENDPOINT ? DEFAULT_TLS_ENDPOINT : opts.endpoints;
  const endpoints = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (endpoints.length === 0) throw new UsageError('--endpoints: no endpoint given');
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
      timeoutMs: opts.timeout,
      retries: opts.retries,
      ...(tls ? { tls } : {}),
      ...(auth ? { auth } : {}),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    throw new UsageError(`--endpoints: ${(err as Error).message}`);
  }
}

/**
 * Runs one command with a client, under --command-timeout (armed once the
 * client is built, after any password prompt; a long-running command
 * disarms it for its normal life and arms it again to clean up, see
 * deadline.ts); maps failures to kvctl's exit codes.
 */
export async function run(
  cmd: Command,
  body: (client: Client, format: Format, deadline: CommandDeadline) => Promise<number | undefined>,
  overrides: Partial<GlobalOptions> = {},
): Promise<void> {
  const opts = { ...globals(cmd), ...overrides };
  const deadline = new CommandDeadline(opts.commandTimeout);
  let client: Client | undefined;
  try {
    client = await makeClient(opts, deadline.signal);
    deadline.arm();
    process.exitCode = (await body(client, opts.output, deadline)) ?? EXIT_OK;
  } catch (err) {
    process.exitCode = report(err, opts.output);
  } finally {
    deadline.disarm();
    await client?.close();
  }
}

export function report(err: unknown, format: Format): number {
  if (err instanceof UsageError || err instanceof CredentialsError) {
    process.stderr.write(`error: ${err.message}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof RaftkvError) {
    // json: the API's error body on stdout (one line), e.g. compare_failed's current kv.
    if (format === 'json' && typeof err.body === 'object' && err.body !== null)
      print(JSON.stringify(err.body));
    process.stderr.write(`error: ${err.code}: ${err.message}\n`);
    return err.code === 'unavailable' || err.code === 'timeout' || err.code === 'tls_failed'
      ? EXIT_UNAVAILABLE
      : EXIT_FAILED;
  }
  process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
  return EXIT_FAILED;
}

export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/**
 * Output chosen once per command: `show(value, text)` prints the API's JSON
 * (`-o json`) or the table text (`-o table`, rendered only then).
 */
export interface Printer {
  readonly format: Format;
  show(value: unknown, text: () => string): void;
}

export function printer(format: Format): Printer {
  return {
    format,
    show: (value, text) => (format === 'json' ? printJson(value) : print(text())),
  };
}

/** run(), with the printer of the command's output format. */
export function runPrinted(
  cmd: Command,
  body: (client: Client, out: Printer, deadline: CommandDeadline) => Promise<number | undefined>,
): Promise<void> {
  return run(cmd, (client, format, deadline) => body(client, printer(format), deadline));
}

// ------------------------------------------------------------------ global flags

/** The flags that mean the same for every command. */
export function addGlobalOptions(program: Command): Command {
  return program
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
      new Option(
        '--command-timeout <duration>',
        'give up on a command after this long, every retry and failover included ' +
          '(e.g. 5s, 500ms, 2m, or milliseconds; 0: never); long-running commands: see below',
      )
        .env('KVCTL_COMMAND_TIMEOUT')
        .argParser(duration)
        .default(DEFAULT_COMMAND_TIMEOUT_MS, `${DEFAULT_COMMAND_TIMEOUT_MS / 1000}s`),
    )
    .addOption(
      new Option(
        '--timeout <ms>',
        'timeout of each attempt, in milliseconds (within --command-timeout)',
      )
        .argParser(integer(1))
        .default(DEFAULT_TIMEOUT_MS),
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
