/** kvctl status and alarm list|disarm: how the members are doing. */
import type { Command } from 'commander';
import type { RaftkvError, StatusResponse } from '../../src/client/index.js';
import { type CommandContext, EXIT_OK, EXIT_UNAVAILABLE } from './common.js';
import { fields, table } from './printer.js';

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

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('status')
    .description("a node's status (the first endpoint that answers, or each with --all)")
    .option('--all', 'ask every endpoint')
    .action((o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        if (!o.all) {
          const res = await client.status();
          out.show(res, () => statusFields(res));
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
        out.show(results, () =>
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

  const alarm = program
    .command('alarm')
    .description("list and disarm the cluster's alarms (nospace: the space quota is exceeded)");

  alarm
    .command('list')
    .description('list the active alarms (exit 0 also when there are none)')
    .action((_o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.alarms();
        out.show(res, () =>
          res.alarms.length === 0
            ? 'no active alarms'
            : table(
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
      ctx.run(cmd, async (client, out) => {
        const res = await client.disarmAlarms(o.member === undefined ? {} : { memberId: o.member });
        out.show(res, () =>
          res.disarmed.length === 0
            ? 'no alarm to disarm'
            : `disarmed ${res.disarmed.map((a) => `${a.alarm} of ${a.memberId}`).join(', ')}`,
        );
        return EXIT_OK;
      }),
    );
}
