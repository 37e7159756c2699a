/** kvctl elect NAME VALUE (campaign and lead until interrupted) and elect NAME --observe. */
import type { Command } from 'commander';
import { type ElectionLeader, isRaftkvError } from '../../src/client/index.js';
import {
  type CommandContext,
  duration,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  integer,
  note,
  UsageError,
} from './common.js';
import { cell } from './printer.js';
import { DEFAULT_LEASE_TTL, heldLease, interrupted, lostMessage } from './session.js';
import { valueFrom } from './value-input.js';

/**
 * Each campaign request waits this long in line, then campaigns again (until
 * interrupted, or until --wait-timeout is spent).
 */
const CAMPAIGN_REQUEST_MS = 60_000;

function leaderLine(revision: number, leader: ElectionLeader | null): string {
  return leader
    ? `${revision}  ${cell(leader.value)}  (key ${cell(leader.key)}, since revision ${leader.revision})`
    : `${revision}  (no leader)`;
}

export function register(program: Command, ctx: CommandContext): void {
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
    .option(
      '--wait-timeout <duration>',
      'give up campaigning if not elected within this long (e.g. 30s, or milliseconds); exit 1',
      duration(1),
    )
    .addHelpText('after', '\nExit 1 on lock_timeout (not elected within --wait-timeout).')
    .action(async (name: string, arg: string | undefined, o, cmd: Command) => {
      if (o.observe && (arg !== undefined || o.file !== undefined))
        throw new UsageError('elect --observe takes no VALUE');
      if (o.observe && o.waitTimeout !== undefined)
        throw new UsageError('elect --observe waits for nothing: no --wait-timeout');
      const value = o.observe ? undefined : await valueFrom('elect', arg, o.file);
      return ctx.run(cmd, async (client, out, deadline) => {
        const stop = interrupted();
        const controller = new AbortController();
        void stop.promise.then(() => controller.abort());
        try {
          if (value === undefined) {
            const changes = client.observe(name, {
              signal: controller.signal,
              onOpen: () => deadline.disarm(),
            });
            for await (const change of changes)
              out.line(change, () => leaderLine(change.revision, change.leader));
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
            const waitMs = o.waitTimeout as number | undefined;
            const giveUpAtMs = waitMs === undefined ? undefined : Date.now() + waitMs;
            let leader: ElectionLeader | undefined;
            while (!controller.signal.aborted && leader === undefined) {
              const leftMs =
                giveUpAtMs === undefined ? CAMPAIGN_REQUEST_MS : giveUpAtMs - Date.now();
              try {
                leader = (
                  await client.campaign(name, {
                    lease: held.id,
                    value,
                    timeoutMs: Math.max(1, Math.min(CAMPAIGN_REQUEST_MS, leftMs)),
                    signal: controller.signal,
                  })
                ).leader;
              } catch (err) {
                if (controller.signal.aborted) break;
                const spent = giveUpAtMs !== undefined && Date.now() >= giveUpAtMs;
                // The lease's revocation (below) takes the candidacy out of the line.
                if (isRaftkvError(err, 'lock_timeout') && !spent) continue;
                throw err;
              }
            }
            if (leader !== undefined) {
              const elected = leader;
              out.line(
                { elected: true, leader: elected },
                () => `elected: ${cell(name)} = ${cell(elected.value)} (key ${cell(elected.key)})`,
              );
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
}
