/** kvctl status and alarm list|disarm: how the members are doing. */
import type { Command } from 'commander';
import type { Client, RaftkvError, StatusResponse } from '../../src/client/index.js';
import { formatBytes } from '../progress.js';
import { type CommandContext, EXIT_OK, EXIT_UNAVAILABLE, globals, UsageError } from './common.js';
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

/** How long `status` waits for each member it discovered, at most (a down member must not hold the table up). */
export const MEMBER_STATUS_TIMEOUT_MS = 3_000;

/** One member's row of `kvctl status` (discovery): its status, or why there is none. */
export interface MemberStatus {
  name: string;
  id: string;
  /** The client URL asked (the member's first); "" when it has none. */
  endpoint: string;
  /** Whether the members list names it as the leader. */
  leader: boolean;
  status?: StatusResponse;
  error?: { code: string; message: string };
}

/**
 * Every member's status: the members list from `client` (any endpoint that
 * answers), then /v1/status of each member's client URL, in parallel, each
 * bounded by `timeoutMs`. An unreachable member is a row with its error.
 */
export async function memberStatuses(
  client: Client,
  timeoutMs = MEMBER_STATUS_TIMEOUT_MS,
): Promise<MemberStatus[]> {
  // Each member's own view, so that status works without a leader too.
  const { members, leader } = await client.members({ consistency: 'serializable' });
  return Promise.all(
    members.map(async (m): Promise<MemberStatus> => {
      const endpoint = m.clientUrls[0] ?? '';
      const row = { name: m.name, id: m.id, endpoint, leader: m.id === leader };
      if (endpoint === '')
        return { ...row, error: { code: 'unavailable', message: 'no client URL' } };
      try {
        return {
          ...row,
          status: await client.status({ endpoint, signal: AbortSignal.timeout(timeoutMs) }),
        };
      } catch (err) {
        const e = err as Partial<RaftkvError> & Error;
        return { ...row, error: { code: e.code ?? 'unavailable', message: e.message } };
      }
    }),
  );
}

export function memberStatusTable(rows: MemberStatus[]): string {
  return table(
    [
      'NAME',
      'ID',
      'ENDPOINT',
      'ROLE',
      'LEADER',
      'TERM',
      'COMMIT',
      'APPLIED',
      'REVISION',
      'DB-SIZE',
      'VERSION',
      'ERROR',
    ],
    rows.map((r) => {
      const s = r.status;
      return [
        r.name,
        r.id,
        r.endpoint,
        s?.role ?? '',
        r.leader ? '*' : '',
        s?.term ?? '',
        s?.commitIndex ?? '',
        s?.appliedIndex ?? '',
        s?.revision ?? '',
        s ? formatBytes(s.dbSizeBytes) : '',
        s?.version ?? '',
        r.error ? `${r.error.code}: ${r.error.message}` : '',
      ];
    }),
  );
}

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('status')
    .description(
      "every member's status, found through the members list; with --endpoints (or KVCTL_ENDPOINTS), the first that answers, or each with --all",
    )
    .option('--all', 'ask every endpoint of --endpoints')
    .option('--cluster', 'find the members through the members list even with --endpoints')
    .action((o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        if (o.all && o.cluster) throw new UsageError('status: --all or --cluster, not both');
        if (o.cluster || (!o.all && !globals(cmd).endpointsGiven)) {
          const rows = await memberStatuses(client);
          out.show(rows, () => memberStatusTable(rows));
          return rows.every((r) => r.status) ? EXIT_OK : EXIT_UNAVAILABLE;
        }
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
