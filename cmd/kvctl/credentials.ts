/**
 * kvctl's `--user NAME[:PASSWORD]` (or KVCTL_USER) and the password prompt.
 */
import type { ClientAuth } from '../../src/client/index.js';

/** A mistake in how credentials were given: kvctl exits 2 with this message. */
export class CredentialsError extends Error {}

/** askSecret found no terminal to ask on. */
export class NoTerminalError extends CredentialsError {}

/** Asks for a secret on the terminal; rejects with NoTerminalError when there is none. */
export type AskSecret = (question: string) => Promise<string>;

/**
 * The credentials `--user` names, or undefined without it. NAME:PASSWORD
 * splits at the first colon (a password may contain colons, a name may not).
 * Without a password: KVCTL_PASSWORD, else `ask` (the terminal), which fails
 * with a message saying how to pass one when there is no terminal.
 */
export async function resolveUser(
  spec: string | undefined,
  env: NodeJS.ProcessEnv,
  ask: AskSecret,
): Promise<ClientAuth | undefined> {
  if (spec === undefined || spec === '') return undefined;
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  if (name === '') throw new CredentialsError(`--user "${spec}": the user name is empty`);
  if (colon >= 0) return { name, password: spec.slice(colon + 1) };
  if (env.KVCTL_PASSWORD !== undefined) return { name, password: env.KVCTL_PASSWORD };
  try {
    return { name, password: await ask(`Password for ${name}: `) };
  } catch (err) {
    if (!(err instanceof NoTerminalError)) throw err;
    throw new CredentialsError(
      `--user ${name}: no password given, and stdin is not a terminal to ask for one: ` +
        `use --user ${name}:PASSWORD, or set KVCTL_PASSWORD`,
    );
  }
}

/**
 * Reads one line from the terminal without echoing it (raw mode): Enter
 * ends it, Backspace deletes, Ctrl-C or Ctrl-D on an empty line aborts.
 * Throws CredentialsError when stdin is not a terminal.
 */
export const askSecret: AskSecret = async (question) => {
  const input = process.stdin;
  if (!input.isTTY)
    throw new NoTerminalError(`stdin is not a terminal: cannot ask "${question.trim()}"`);
  // Echo off before the prompt shows: what is typed as soon as it appears is not echoed.
  input.setRawMode(true);
  process.stderr.write(question);
  input.resume();
  input.setEncoding('utf8');
  try {
    return await new Promise<string>((resolve, reject) => {
      let secret = '';
      const onData = (chunk: string) => {
        for (const c of chunk) {
          if (c === '\r' || c === '\n') {
            input.removeListener('data', onData);
            resolve(secret);
            return;
          }
          if (c === '\u0003' || (c === '\u0004' && secret === '')) {
            input.removeListener('data', onData);
            reject(new CredentialsError('password entry cancelled'));
            return;
          }
          if (c === '\u007f' || c === '\b') secret = [...secret].slice(0, -1).join('');
          else if (c >= ' ') secret += c;
        }
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
    process.stderr.write('\n');
  }
};

/**
 * A new password, typed twice on the terminal (or `given`). Throws
 * CredentialsError when the two differ, or there is no terminal.
 */
export async function newPassword(
  what: string,
  given: string | undefined,
  ask: AskSecret,
  hint: string,
): Promise<string> {
  if (given !== undefined) return given;
  let first: string;
  try {
    first = await ask(`New password for ${what}: `);
  } catch (err) {
    if (!(err instanceof NoTerminalError)) throw err;
    throw new CredentialsError(
      `no password for ${what}, and stdin is not a terminal to ask for one: ${hint}`,
    );
  }
  const again = await ask('Again: ');
  if (first !== again) throw new CredentialsError('the two passwords differ');
  if (first === '') throw new CredentialsError(`an empty password for ${what}: ${hint}`);
  return first;
}

/**
 * The first line of stdin (without its line ending), for `--password-stdin`:
 * scripts pass a password this way without showing it in the process list.
 */
export async function passwordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (line === '') throw new CredentialsError('--password-stdin: stdin held no password');
  return line;
}
