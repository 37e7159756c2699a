/** kvctl members, member add|promote|remove, move-leader: the cluster's membership and leader. */
import { type Command, Option } from 'commander';
import type { Member } from '../../src/client/index.js';
import { type CommandContext, EXIT_OK } from './common.js';
import { fields, type Printer, table } from './printer.js';

function showMember(out: Printer, m: Member): void {
  out.show(m, () =>
    fields([
      ['id', m.id],
      ['name', m.name],
      ['role', m.role],
      ['peerUrls', m.peerUrls.join(',')],
      ['clientUrls', m.clientUrls.join(',')],
    ]),
  );
}

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('members')
    .description('list the cluster members')
    .addOption(
      new Option(
        '--consistency <level>',
        "linearizable (default: acknowledged changes show) or serializable (the answering member's view, also without a leader)",
      ).choices(['linearizable', 'serializable']),
    )
    .action((o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.members(o.consistency ? { consistency: o.consistency } : {});
        out.show(res, () =>
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

  member
    .command('add')
    .description('add a member, then start it with `raftkv --join` (--learner: promote it later)')
    .argument('<name>', "the new member's --name")
    .argument('<peer-url>', 'its peer URL, e.g. http://10.0.0.4:7380')
    .argument('<client-url>', 'its client URL, e.g. http://10.0.0.4:7379')
    .option('--learner', 'add it as a learner: it replicates but does not vote until promoted')
    .action(
      (name: string, peerUrl: string, clientUrl: string, o: { learner?: boolean }, cmd: Command) =>
        ctx.run(cmd, async (client, out) => {
          showMember(
            out,
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
      ctx.run(cmd, async (client, out) => {
        showMember(out, await client.promoteMember(id));
        return EXIT_OK;
      }),
    );

  member
    .command('remove')
    .description('remove a member from the cluster (then stop its process)')
    .argument('<member-id>', 'see `kvctl members`')
    .action((id: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.removeMember(id);
        out.show(res, () => fields([['removed', res.id]]));
        return EXIT_OK;
      }),
    );

  program
    .command('move-leader')
    .description('hand leadership to a member (by id), or to the most caught-up voter')
    .argument('[member-id]', 'the member to lead next (see `kvctl members`)')
    .action((to: string | undefined, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.moveLeader(to);
        out.show(res, () =>
          fields([
            ['leader', res.leader],
            ['term', res.term],
          ]),
        );
        return EXIT_OK;
      }),
    );
}
