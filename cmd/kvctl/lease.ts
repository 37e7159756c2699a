/** kvctl lease grant|keepalive|revoke|get|ls. */
import type { Command } from 'commander';
import { type CommandContext, EXIT_OK, integer } from './common.js';
import { fields, table } from './printer.js';
import { holdUntilInterruptedOrLost, interrupted } from './session.js';

export function register(program: Command, ctx: CommandContext): void {
  const lease = program
    .command('lease')
    .description('grant, keep alive, revoke and inspect leases');

  lease
    .command('grant')
    .description('grant a lease and print its id')
    .argument('<ttl>', 'time to live, in seconds', integer(1))
    .option('--id <id>', 'choose the lease id')
    .action((ttl: number, o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.grantLease(ttl, o.id !== undefined ? { id: o.id } : {});
        out.show(res, () =>
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
      ctx.run(cmd, async (client, out, deadline) => {
        const first = await client.keepAlive(id);
        // Renewed once: keeping it alive is this command's normal life (lost TTL ends it).
        deadline.disarm();
        out.line(first, () =>
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
      ctx.run(cmd, async (client, out) => {
        const res = await client.revokeLease(id);
        out.show(res, () =>
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
      ctx.run(cmd, async (client, out) => {
        const res = await client.lease(id);
        out.show(res, () =>
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
      ctx.run(cmd, async (client, out) => {
        const leases = await client.leases();
        out.show({ leases }, () =>
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
}
