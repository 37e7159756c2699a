/**
 * Founding-member discovery (--discovery-srv): SRV answers become the map
 * --initial-cluster would give, only once exactly the expected founders
 * (this member among them) are published; bounded waiting; refusals that
 * name the problem; a first start only. The resolver and the clock are fakes,
 * except in the last test, where node:dns asks a DNS server on 127.0.0.1.
 */
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import pino from 'pino';
import t from 'tap';
import {
  DiscoveryError,
  type DiscoveryOptions,
  discoverFounders,
  foundersFromDiscovery,
  type SrvRecord,
} from '../../src/server/discovery.js';
import { LevelRaftStorage } from '../../src/storage/index.js';
import { cleanEnv, RaftkvProcess } from '../integration/process-cluster.js';

const SRV = '_peer._tcp.raftkv-peer.default.svc.cluster.local';
const host = (pod: string) => `${pod}.raftkv-peer.default.svc.cluster.local`;
const srv = (pod: string, port = 7380): SrvRecord => ({
  name: host(pod),
  port,
  priority: 0,
  weight: 100,
});
const notFound = () => Object.assign(new Error(`queryNotFound ${SRV}`), { code: 'ENOTFOUND' });

/** A resolver that gives the scripted answers in turn (the last one again once they run out). */
function scriptedResolver(answers: (SrvRecord[] | Error)[]) {
  const asked: string[] = [];
  return {
    asked,
    async resolveSrv(name: string) {
      asked.push(name);
      const answer = answers[Math.min(asked.length, answers.length) - 1]!;
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}

/** Options with a fake clock that only the fake sleep moves. */
function options(resolver: DiscoveryOptions['resolver'], extra: Partial<DiscoveryOptions> = {}) {
  let nowMs = 0;
  const incomplete: string[] = [];
  const opts: DiscoveryOptions = {
    srvName: SRV,
    expectMembers: 3,
    selfName: 'raftkv-1',
    selfPeerUrl: `https://${host('raftkv-1')}:7380`,
    peerScheme: 'https',
    timeoutMs: 60_000,
    retryIntervalMs: 2000,
    resolver,
    now: () => nowMs,
    sleep: async (ms) => {
      nowMs += ms;
    },
    onIncomplete: (_seen, why) => incomplete.push(why),
    ...extra,
  };
  return { opts, incomplete, elapsedMs: () => nowMs };
}

/** The DiscoveryError a discovery ends with (tap's rejects() takes a function for a class). */
async function refusal(promise: Promise<unknown>): Promise<DiscoveryError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof DiscoveryError) return err;
    throw err;
  }
  throw new Error('discovery succeeded, a DiscoveryError was expected');
}

t.test('waits through missing and partial answers until every founder is published', async (t) => {
  const resolver = scriptedResolver([
    notFound(),
    [srv('raftkv-1')],
    [srv('raftkv-1'), srv('raftkv-0')],
    [srv('raftkv-2'), srv('raftkv-1'), srv('raftkv-0')],
  ]);
  const { opts, incomplete, elapsedMs } = options(resolver);
  const founders = await discoverFounders(opts);
  t.same(
    [...founders],
    [
      ['raftkv-0', `https://${host('raftkv-0')}:7380`],
      ['raftkv-1', `https://${host('raftkv-1')}:7380`],
      ['raftkv-2', `https://${host('raftkv-2')}:7380`],
    ],
    'name = first label of the target, URL = scheme://target:port, sorted by name',
  );
  t.equal(resolver.asked.length, 4);
  t.ok(resolver.asked.every((name) => name === SRV));
  t.equal(elapsedMs(), 3 * 2000, 'one pause between two lookups');
  t.match(incomplete[0], /this member "raftkv-1" is not among the 0 found \(none\)/);
  t.match(incomplete[1], /1 of 3 founders found \(raftkv-1\)/);
  t.match(incomplete[2], /2 of 3 founders found \(raftkv-0, raftkv-1\)/);
});

t.test(
  'gives up at the deadline, after a bounded number of lookups, saying what it saw',
  async (t) => {
    const resolver = scriptedResolver([[srv('raftkv-0'), srv('raftkv-1')]]);
    const { opts, elapsedMs } = options(resolver, { timeoutMs: 10_000 });
    const err = await refusal(discoverFounders(opts));
    t.equal(err.failure, 'incomplete');
    t.equal(err.code, 'unavailable');
    t.match(err.message, /within 10 s: 2 of 3 founders found \(raftkv-0, raftkv-1\)/);
    t.equal(resolver.asked.length, 6, 'at 0, 2, 4, 6, 8 and 10 s');
    t.ok(elapsedMs() <= 10_000, 'never sleeps past the deadline');
  },
);

t.test('a clock that does not move still cannot make it ask forever', async (t) => {
  const resolver = scriptedResolver([[srv('raftkv-0')]]);
  const { opts } = options(resolver, { timeoutMs: 10_000, sleep: async () => {} });
  t.equal((await refusal(discoverFounders(opts))).failure, 'incomplete');
  t.equal(resolver.asked.length, 6, 'timeout / interval + 1 lookups at most');
});

t.test('its own name missing from a full answer is not complete', async (t) => {
  const resolver = scriptedResolver([[srv('raftkv-0'), srv('raftkv-2'), srv('raftkv-3')]]);
  const { opts } = options(resolver, { timeoutMs: 4000 });
  const err = await refusal(discoverFounders(opts));
  t.equal(err.failure, 'incomplete');
  t.match(
    err.message,
    /this member "raftkv-1" is not among the 3 found \(raftkv-0, raftkv-2, raftkv-3\).*--name is not its host name/,
  );
});

t.test('more members than expected are waited out, never founded', async (t) => {
  const five = ['raftkv-0', 'raftkv-1', 'raftkv-2', 'raftkv-3', 'raftkv-4'].map((p) => srv(p));
  const resolver = scriptedResolver([five, five.slice(0, 3)]);
  const { opts, incomplete } = options(resolver);
  const founders = await discoverFounders(opts);
  t.same([...founders.keys()], ['raftkv-0', 'raftkv-1', 'raftkv-2']);
  t.match(incomplete[0], /5 members found .* more than --discovery-expect 3.*--join/);
});

t.test('duplicate records count once; one name from two targets is refused at once', async (t) => {
  // One record per address of a target, trailing dots and upper case: still three members.
  const resolver = scriptedResolver([
    [
      srv('raftkv-0'),
      { ...srv('raftkv-0'), name: `${host('raftkv-0')}.` },
      { ...srv('raftkv-1'), name: host('RAFTKV-1') },
      srv('raftkv-2'),
      { name: '.', port: 0, priority: 0, weight: 0 },
    ],
  ]);
  const founders = await discoverFounders(options(resolver).opts);
  t.same([...founders.keys()], ['raftkv-0', 'raftkv-1', 'raftkv-2']);
  t.equal(founders.get('raftkv-0'), `https://${host('raftkv-0')}:7380`);

  const conflicting = scriptedResolver([
    [srv('raftkv-0'), srv('raftkv-1'), { ...srv('raftkv-0'), name: 'raftkv-0.other.svc' }],
  ]);
  const err = await refusal(discoverFounders(options(conflicting).opts));
  t.equal(err.failure, 'conflict');
  t.equal(err.code, 'invalid_request');
  t.match(err.message, /"raftkv-0" comes from two SRV records/);
  t.equal(conflicting.asked.length, 1, 'not asked again');

  const twoPorts = scriptedResolver([[srv('raftkv-0'), srv('raftkv-0', 7381), srv('raftkv-1')]]);
  t.equal((await refusal(discoverFounders(options(twoPorts).opts))).failure, 'conflict');
});

t.test('its own URL in the answer must be its --advertise-peer-url', async (t) => {
  const resolver = scriptedResolver([[srv('raftkv-0'), srv('raftkv-1', 7390), srv('raftkv-2')]]);
  const err = await refusal(discoverFounders(options(resolver).opts));
  t.equal(err.failure, 'self_mismatch');
  t.match(err.message, /:7390, but --advertise-peer-url is https:\/\/raftkv-1\./);
  const plain = scriptedResolver([[srv('raftkv-0'), srv('raftkv-1'), srv('raftkv-2')]]);
  const plainErr = await refusal(discoverFounders(options(plain, { peerScheme: 'http' }).opts));
  t.equal(plainErr.failure, 'self_mismatch', 'http:// from the records, https:// advertised');
  // Case and a trailing slash are not differences.
  const founders = await discoverFounders(
    options(plain, { selfPeerUrl: `https://${host('RAFTKV-1')}:7380/` }).opts,
  );
  t.equal(founders.size, 3);
});

t.test('resolver failures are asked again, and named if they last', async (t) => {
  const refused = Object.assign(new Error('queryRefused'), { code: 'EREFUSED' });
  const recovering = scriptedResolver([
    refused,
    [srv('raftkv-0'), srv('raftkv-1'), srv('raftkv-2')],
  ]);
  t.equal((await discoverFounders(options(recovering).opts)).size, 3);
  const broken = scriptedResolver([refused]);
  const err = await refusal(discoverFounders(options(broken, { timeoutMs: 2000 }).opts));
  t.match(err.message, /within 2 s: the DNS lookup failed: EREFUSED/);
});

t.test('the raftkv command: flags that do not go with discovery are refused', async (t) => {
  const never = {
    resolveSrv: async () => {
      throw new Error('must not be asked');
    },
  };
  const base = {
    name: 'raftkv-1',
    dataDir: join(tmpdir(), 'raftkv-discovery-never-created'),
    advertisePeerUrl: `https://${host('raftkv-1')}:7380`,
    initialCluster: new Map<string, string>(),
  };
  const flags = { srvName: SRV, expectMembers: 3, timeoutMs: 1000 };
  const log = pino({ level: 'silent' });
  const refused = async (config: object, flagsUsed: object, pattern: RegExp) => {
    const err = await refusal(
      foundersFromDiscovery(config, { ...flags, ...flagsUsed }, { resolver: never, log }),
    );
    t.equal(err.failure, 'bad_flags');
    t.match(err.message, pattern);
  };
  await refused({ ...base, initialCluster: new Map([['a', 'http://a:1']]) }, {}, /give only one/);
  await refused({ ...base, join: true }, {}, /--join joins a running one/);
  await refused(base, { expectMembers: undefined }, /needs --discovery-expect/);
  await refused({ ...base, advertisePeerUrl: undefined }, {}, /needs --advertise-peer-url/);
});

t.test('the raftkv command: discovery runs on a first start only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-discovery-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'member');
  const config = {
    name: 'raftkv-1',
    dataDir,
    logLevel: 'silent' as const,
    advertisePeerUrl: `http://${host('raftkv-1')}:7380`,
    initialCluster: new Map<string, string>(),
  };
  const flags = { srvName: SRV, expectMembers: 3, timeoutMs: 1000 };
  const complete = scriptedResolver([[srv('raftkv-0'), srv('raftkv-1'), srv('raftkv-2')]]);
  const founders = await foundersFromDiscovery(config, flags, { resolver: complete });
  t.same([...founders.keys()], ['raftkv-0', 'raftkv-1', 'raftkv-2'], 'no data dir: discovered');
  t.equal(founders.get('raftkv-1'), `http://${host('raftkv-1')}:7380`, 'http:// without peer TLS');

  // A database that was opened but never initialized is still a first start.
  const storage = await LevelRaftStorage.open(dataDir);
  await storage.close();
  t.equal((await foundersFromDiscovery(config, flags, { resolver: complete })).size, 3);

  const reopened = await LevelRaftStorage.open(dataDir);
  await reopened.initialize({ clusterId: 'c1', nodeId: 'id1', nodeName: 'raftkv-1' }, ['id1']);
  await reopened.close();
  const asked = complete.asked.length;
  const again = await foundersFromDiscovery(config, flags, { resolver: complete });
  t.equal(again.size, 0, 'an initialized data dir: nothing discovered, the data dir rules');
  t.equal(complete.asked.length, asked, 'and DNS not asked');
});

/** Runs raftkv with `args` and `env`, bounded: a raftkv that ignored the flags could run on. */
async function runRaftkv(args: string[], env: NodeJS.ProcessEnv) {
  const proc = new RaftkvProcess(args, { env: { ...cleanEnv(), ...env } });
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    proc.exited,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), 60_000);
    }),
  ]);
  clearTimeout(timer);
  if (exit === undefined) {
    proc.signal('SIGKILL');
    await proc.exited;
  }
  return { exit, stderr: proc.stderr };
}

t.test(
  'raftkv and raftkv restore with --discovery-srv: a flag missing is one line and exit 1, before the data dir',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-discovery-cmd-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // Through the environment, as the StatefulSet sets it; no DNS is asked.
    const env = (member: string) => ({
      RAFTKV_NAME: 'raftkv-1',
      RAFTKV_DATA_DIR: join(dir, member),
      RAFTKV_LISTEN_CLIENT: '127.0.0.1:0',
      RAFTKV_LISTEN_PEER: '127.0.0.1:0',
      RAFTKV_ADVERTISE_PEER_URL: 'http://127.0.0.1:7380',
      RAFTKV_DISCOVERY_SRV: SRV,
    });
    // A start would found a cluster of one without the flag; a restore would
    // first fail on the missing backup file.
    const runs = await Promise.all([
      runRaftkv([], env('started')),
      runRaftkv(['restore', join(dir, 'no-such-backup.snap')], env('restored')),
    ]);
    for (const [i, { exit, stderr }] of runs.entries()) {
      const what = i === 0 ? 'raftkv' : 'raftkv restore';
      t.same(exit, { code: 1, signal: null }, `${what}: ${stderr}`);
      t.match(stderr, /^raftkv: --discovery-srv needs --discovery-expect/, what);
      t.notMatch(stderr, /\n\s+at /, `${what}: no stack trace`);
    }
    t.notOk(existsSync(join(dir, 'started')), 'the data dir is not created');
    t.notOk(existsSync(join(dir, 'restored')), 'nor the restored one');
  },
);

/**
 * A DNS server on 127.0.0.1 that answers SRV queries for SRV with the
 * scripted record sets in turn (NXDOMAIN for an empty set), and refuses others.
 */
async function startDnsServer(answers: string[][]) {
  const socket = createSocket('udp4');
  let queries = 0;
  socket.on('message', (message, from) => {
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    const pods =
      question?.type === 'SRV' && question.name === SRV
        ? answers[Math.min(queries++, answers.length - 1)]!
        : undefined;
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (pods && pods.length > 0 ? 0 : 3), // rcode 3: NXDOMAIN
      questions: query.questions,
      answers: (pods ?? []).map((pod) => ({
        type: 'SRV' as const,
        name: SRV,
        ttl: 5,
        data: { target: host(pod), port: 7380, priority: 0, weight: 100 },
      })),
    });
    socket.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    queries: () => queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

t.test('with node:dns asking a DNS server on 127.0.0.1', async (t) => {
  const server = await startDnsServer([
    [],
    ['raftkv-0', 'raftkv-1'],
    ['raftkv-2', 'raftkv-0', 'raftkv-1'],
  ]);
  t.teardown(server.close);
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([`127.0.0.1:${server.port}`]);
  const { opts, incomplete } = options(resolver);
  const founders = await discoverFounders(opts);
  t.same([...founders.keys()], ['raftkv-0', 'raftkv-1', 'raftkv-2']);
  t.equal(founders.get('raftkv-2'), `https://${host('raftkv-2')}:7380`);
  t.equal(server.queries(), 3);
  t.match(incomplete[0], /not among the 0 found/, 'NXDOMAIN: nothing published yet, asked again');
  t.match(incomplete[1], /2 of 3 founders found/);
});
