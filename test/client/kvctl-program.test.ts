/**
 * kvctl's command tree without a cluster: every command parsed with a
 * context that records what it would run (test/client/kvctl.test.ts and the
 * other kvctl tests run the real thing). Pins down that the global flags mean
 * the same before and after every command, that no command's option shadows
 * one, the old --timeout, and `status` finding the members by itself.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import t from 'tap';
import { type CommandBody, type GlobalOptions, globals } from '../../cmd/kvctl/common.js';
import { commandPaths } from '../../cmd/kvctl/completion.js';
import type { CommandDeadline } from '../../cmd/kvctl/deadline.js';
import { printerFor } from '../../cmd/kvctl/printer.js';
import { buildProgram } from '../../cmd/kvctl/program.js';
import type { Client, MembersResponse, StatusResponse } from '../../src/client/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'kvctl-program-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const txnFile = join(tmp, 'txn.json');
writeFileSync(txnFile, '{}');

/** Parses `argv` (after `kvctl`) and returns the global options each command run would use. */
async function resolve(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ opts: GlobalOptions; cmd: Command }[]> {
  const seen: { opts: GlobalOptions; cmd: Command }[] = [];
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('KVCTL_')) delete process.env[k];
  Object.assign(process.env, env);
  try {
    const program = buildProgram({
      run: async (cmd, _body, overrides = {}) => {
        seen.push({ opts: { ...globals(cmd), ...overrides }, cmd });
      },
    });
    await program.parseAsync(argv, { from: 'user' });
  } finally {
    process.env = saved;
  }
  return seen;
}

/** Every command that runs against the cluster, with arguments that satisfy it. */
function leafCommands(): { path: string[]; args: string[] }[] {
  return commandPaths(buildProgram())
    .filter(({ path, cmd }) => path !== '' && cmd.commands.length === 0 && path !== 'completion')
    .map(({ path, cmd }) => {
      const args: string[] = [];
      for (const a of cmd.registeredArguments) {
        if (a.variadic) continue;
        if (path === 'txn') args.push(txnFile);
        else if (a.argChoices) args.push(a.argChoices[0]!);
        else args.push(a.parseArg ? '1' : 'x');
      }
      for (const o of cmd.options) if (o.mandatory) args.push(o.long!, 'x');
      return { path: path.split(' '), args };
    });
}

const GLOBAL_FLAGS = [
  '--endpoints',
  'http://10.0.0.9:7379',
  '-o',
  'json',
  '--command-timeout',
  '2s',
  '--request-timeout',
  '300',
  '--retries',
  '1',
];

t.test('global flags mean the same before and after every command', async (t) => {
  const leaves = leafCommands();
  t.ok(leaves.length >= 40, `${leaves.length} commands`);
  for (const { path, args } of leaves) {
    for (const argv of [
      [...GLOBAL_FLAGS, ...path, ...args],
      [...path, ...args, ...GLOBAL_FLAGS],
    ]) {
      const seen = await resolve(argv);
      t.equal(seen.length, 1, `${argv.join(' ')} runs once`);
      t.match(
        seen[0]?.opts,
        {
          endpoints: 'http://10.0.0.9:7379',
          endpointsGiven: true,
          output: 'json',
          commandTimeout: 2000,
          requestTimeout: 300,
          retries: 1,
        },
        argv.join(' '),
      );
    }
  }
});

t.test('no command declares an option with a global flag', async (t) => {
  const nodes = commandPaths(buildProgram());
  const globalFlags = new Set(
    nodes[0]!.cmd.options.flatMap((o) => [o.short, o.long]).filter((f) => f !== undefined),
  );
  for (const { path, cmd } of nodes.slice(1))
    for (const o of cmd.options)
      for (const f of [o.short, o.long])
        if (f !== undefined) t.notOk(globalFlags.has(f), `${path} ${f} is not a global flag`);
});

t.test('the defaults, and the environment, when no flag is given', async (t) => {
  const [plain] = await resolve(['get', 'k']);
  t.match(plain?.opts, {
    endpoints: 'http://127.0.0.1:7379',
    endpointsGiven: false,
    output: 'table',
    commandTimeout: 5000,
    requestTimeout: 10_000,
    retries: 3,
  });
  const [fromEnv] = await resolve(['get', 'k'], { KVCTL_ENDPOINTS: 'http://10.0.0.1:7379' });
  t.match(fromEnv?.opts, { endpoints: 'http://10.0.0.1:7379', endpointsGiven: true });
});

t.test('the old --timeout is --request-timeout everywhere but on lock', async (t) => {
  for (const argv of [
    ['--timeout', '700', 'get', 'k'],
    ['get', 'k', '--timeout', '700'],
  ]) {
    const [run] = await resolve(argv);
    t.equal(run?.opts.requestTimeout, 700, argv.join(' '));
  }
  const [both] = await resolve(['--timeout', '700', '--request-timeout', '900', 'get', 'k']);
  t.equal(both?.opts.requestTimeout, 900, '--request-timeout wins over the old name');
  // On lock, --timeout was always the wait: requests keep --request-timeout.
  for (const argv of [
    ['lock', 'job', '--timeout', '1500'],
    ['--timeout', '1500', 'lock', 'job'],
    ['lock', 'job', '--timeout', '1500', '--request-timeout', '400'],
  ]) {
    const [run] = await resolve(argv);
    t.equal(
      run?.opts.requestTimeout,
      argv.includes('--request-timeout') ? 400 : 10_000,
      `${argv.join(' ')}: requests keep their timeout`,
    );
  }
  const [wait] = await resolve(['lock', 'job', '--wait-timeout', '2s']);
  t.equal(wait?.cmd.opts().waitTimeout, 2000, '--wait-timeout takes a duration');
});

// ------------------------------------------------------------------ running a command's body

/** Runs `argv` with `client` as the cluster; what it printed and its exit code. */
async function runWith(
  argv: string[],
  client: Partial<Client>,
): Promise<{ stdout: string; code: number | undefined }> {
  let stdout = '';
  let code: number | undefined;
  const sink = {
    write: (s: string) => {
      stdout += s;
      return true;
    },
  };
  const deadline = { arm() {}, disarm() {}, outside: <T>(f: () => Promise<T>) => f() };
  const program = buildProgram({
    run: async (cmd, body: CommandBody, overrides = {}) => {
      const opts = { ...globals(cmd), ...overrides };
      code = await body(
        client as Client,
        printerFor(opts.output, sink),
        deadline as unknown as CommandDeadline,
      );
    },
  });
  const saved = { ...process.env };
  delete process.env.KVCTL_ENDPOINTS;
  try {
    await program.parseAsync(argv, { from: 'user' });
  } finally {
    process.env = saved;
  }
  return { stdout, code };
}

const status = (id: string, name: string, role: string): StatusResponse =>
  ({
    id,
    name,
    role,
    leader: 'a1',
    term: 4,
    commitIndex: 20,
    appliedIndex: 19,
    revision: 12,
    compactRevision: 0,
    members: 3,
    dbSizeBytes: 2048,
    stateSizeBytes: 100,
    quotaBytes: 0,
    alarms: [],
    version: '0.1.0',
  }) as unknown as StatusResponse;

const members: MembersResponse = {
  leader: 'a1',
  members: [
    { id: 'a1', name: 'n1', role: 'voter', peerUrls: [], clientUrls: ['http://h1:7379'] },
    { id: 'b2', name: 'n2', role: 'voter', peerUrls: [], clientUrls: ['http://h2:7379'] },
    { id: 'c3', name: 'n3', role: 'learner', peerUrls: [], clientUrls: ['http://h3:7379'] },
  ],
} as unknown as MembersResponse;

function fakeCluster(asked: string[]): Partial<Client> {
  return {
    members: async () => members,
    status: async (o = {}) => {
      asked.push(o.endpoint ?? '(any)');
      if (o.endpoint === 'http://h3:7379')
        throw Object.assign(new Error('down'), { code: 'unavailable' });
      if (o.endpoint === 'http://h2:7379') return status('b2', 'n2', 'follower');
      return status('a1', 'n1', 'leader');
    },
  };
}

t.test(
  'status without --endpoints shows every member found through the members list',
  async (t) => {
    const asked: string[] = [];
    const tableRun = await runWith(['status'], fakeCluster(asked));
    t.same(
      asked.sort(),
      ['http://h1:7379', 'http://h2:7379', 'http://h3:7379'],
      'each member once',
    );
    t.equal(tableRun.code, 3, 'an unreachable member: exit 3');
    const lines = tableRun.stdout.trimEnd().split('\n');
    t.equal(lines.length, 4, 'a header and one row per member');
    t.match(
      lines[0],
      /^NAME\s+ID\s+ENDPOINT\s+ROLE\s+LEADER\s+TERM\s+COMMIT\s+APPLIED\s+REVISION\s+DB-SIZE\s+VERSION\s+ERROR$/,
    );
    t.match(
      lines[1],
      /^n1\s+a1\s+http:\/\/h1:7379\s+leader\s+\*\s+4\s+20\s+19\s+12\s+2\.0 KiB\s+0\.1\.0\s+-$/,
      'an empty cell is -',
    );
    t.match(lines[2], /^n2\s+b2\s+http:\/\/h2:7379\s+follower\s+-\s+4\s+/);
    t.match(lines[3], /^n3\s+c3\s+http:\/\/h3:7379\s+.*unavailable: down$/);

    const jsonRun = await runWith(['status', '-o', 'json'], fakeCluster([]));
    const rows = JSON.parse(jsonRun.stdout);
    t.equal(rows.length, 3, 'json: an array, one element per member');
    t.match(rows[0], { name: 'n1', id: 'a1', leader: true, status: { role: 'leader' } });
    t.match(rows[2], {
      name: 'n3',
      leader: false,
      error: { code: 'unavailable', message: 'down' },
    });
  },
);

t.test('status with --endpoints keeps the single node answer; --cluster discovers', async (t) => {
  const asked: string[] = [];
  const one = await runWith(['status', '--endpoints', 'http://h1:7379'], fakeCluster(asked));
  t.equal(one.code, 0);
  t.same(asked, ['(any)']);
  t.match(one.stdout, /^id\s+a1\nname\s+n1\nrole\s+leader\n/);
  const all = await runWith(
    ['status', '--endpoints', 'http://h1:7379', '--cluster'],
    fakeCluster([]),
  );
  t.equal(all.stdout.trimEnd().split('\n').length, 4, '--cluster: one row per member');
});

t.test('the printer is chosen once: json indented for answers, one line per event', async (t) => {
  let out = '';
  const sink = {
    write: (s: string) => {
      out += s;
      return true;
    },
  };
  const json = printerFor('json', sink);
  json.show({ a: 1 }, () => {
    t.fail('the table text is not rendered for json');
    return '';
  });
  json.line({ b: 2 }, () => 'unused');
  t.equal(out, '{\n  "a": 1\n}\n{"b":2}\n');
  out = '';
  const table = printerFor('table', sink);
  table.show({ a: 1 }, () => 'a  1');
  table.line({ b: 2 }, () => 'b  2');
  t.equal(out, 'a  1\nb  2\n');
});
