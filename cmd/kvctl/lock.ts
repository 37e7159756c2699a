/**
 * kvctl lock NAME [-- command...]: wait in line for a lock (with a lease of
 * its own), then hold it until interrupted, or run a command while holding it.
 *
 * The wait is bounded by `--wait-timeout`. Its old name, `--timeout`, keeps
 * working here as the wait (wherever it stands on the command line, as
 * before), with a note on stderr: everywhere else `--timeout` is the old name
 * of the global --request-timeout, which on `lock` keeps its own value.
 */
import type { Command } from 'commander';
import type { Lock, RaftkvError } from '../../src/client/index.js';
import {
  type CommandContext,
  duration,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  integer,
  legacyTimeoutGiven,
  note,
} from './common.js';
import { fields } from './printer.js';
import { DEFAULT_LEASE_TTL, heldLease, interrupted, lostMessage, runCommand } from './session.js';

/** `lock` interrupted before it got the lock (128 + SIGINT). */
const EXIT_INTERRUPTED = 130;

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('lock')
    .description(
      'acquire a lock (with a new lease kept alive) and hold it until interrupted, or run a command while holding it (lock NAME -- command args...)',
    )
    .argument('<name>')
    .argument('[command...]', 'command to run while holding the lock')
    .option('--ttl <s>', 'TTL of the lease, in seconds', integer(1), DEFAULT_LEASE_TTL)
    .option(
      '--wait-timeout <duration>',
      'give up waiting for the lock after this long (e.g. 30s, or milliseconds); exit 1',
      duration(0),
    )
    .addHelpText(
      'after',
      '\nThe command gets RAFTKV_LOCK_NAME, RAFTKV_LOCK_KEY (the holder key, URI-encoded) and\n' +
        'RAFTKV_FENCING_TOKEN in its environment, and SIGTERM if the lease is lost. kvctl then\n' +
        "releases the lock, revokes the lease and exits with the command's exit code.\n" +
        'Exit 1 on lock_timeout; 130 if interrupted while waiting.\n' +
        '`lock --timeout MS` (the old name of --wait-timeout) still sets the wait.',
    )
    .action((name: string, command: string[], o, cmd: Command) => {
      let waitMs: number | undefined = o.waitTimeout;
      const overrides: { requestTimeout?: number } = {};
      if (legacyTimeoutGiven(cmd)) {
        const g = cmd.optsWithGlobals();
        if (waitMs === undefined) {
          waitMs = g.timeout as number;
          note('kvctl: lock --timeout is now --wait-timeout (the wait for the lock)');
        }
        // Requests keep --request-timeout (or its default), as they always did on `lock`.
        overrides.requestTimeout = g.requestTimeout as number;
      }
      return ctx.run(
        cmd,
        async (client, out, deadline) => {
          const held = await heldLease(client, o.ttl);
          // Waiting in line (bounded by --wait-timeout) and holding are the normal life.
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
                  ...(waitMs !== undefined && waitMs > 0 ? { timeoutMs: waitMs } : {}),
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
              out.line(lock, () =>
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
        overrides,
      );
    });
}
