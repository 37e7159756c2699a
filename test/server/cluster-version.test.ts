/**
 * Versions (README "Upgrades and the compatibility promise"): the cluster
 * version is the lowest member's, unknown counts as the oldest compatible one,
 * and a command is proposed only once the cluster version has it.
 */
import t from 'tap';
import {
  BUILD_VERSION,
  ClusterVersionGate,
  COMMAND_INTRODUCED_IN,
  clusterVersionOf,
  commandsOf,
  compareVersions,
  oldestCompatibleVersion,
  understandsServerCommand,
  understoodKvCommands,
} from '../../src/server/cluster-version.js';
import { VERSION } from '../../src/server/node.js';

t.test('versions compare as numbers, part by part', async (t) => {
  t.ok(compareVersions('0.2.0', '0.10.0') < 0, '0.2 is older than 0.10');
  t.ok(compareVersions('1.0.0', '0.99.99') > 0);
  t.equal(compareVersions('0.1.0', '0.1.0'), 0);
  t.throws(() => compareVersions('0.1', '0.1.0'), /not a version/);
});

t.test('this build runs 0.1.0 unless a bundle defines another version', async (t) => {
  t.equal(BUILD_VERSION, '0.1.0');
  t.equal(VERSION, BUILD_VERSION, 'status and --version report the same');
});

t.test(
  'the oldest compatible version is the previous minor, never before the first release',
  async (t) => {
    t.equal(oldestCompatibleVersion('0.1.0'), '0.1.0');
    t.equal(oldestCompatibleVersion('0.2.0'), '0.1.0');
    t.equal(oldestCompatibleVersion('0.2.5'), '0.1.0');
    t.equal(oldestCompatibleVersion('0.5.1'), '0.4.0');
    t.equal(oldestCompatibleVersion('2.0.0'), '2.0.0');
  },
);

t.test(
  'the cluster version is the lowest member version; unpublished counts as the oldest',
  async (t) => {
    t.equal(clusterVersionOf(['0.2.0', '0.2.0', '0.2.0'], '0.1.0'), '0.2.0');
    t.equal(clusterVersionOf(['0.2.0', '0.1.0', '0.2.0'], '0.1.0'), '0.1.0');
    t.equal(clusterVersionOf(['0.2.0', undefined, '0.2.0'], '0.1.0'), '0.1.0', 'not published yet');
    t.equal(clusterVersionOf(['0.2.0', 'garbage', '0.2.0'], '0.1.0'), '0.1.0', 'unreadable');
    t.equal(clusterVersionOf(['0.10.0', '0.9.0'], '0.9.0'), '0.9.0', 'numeric, not string order');
    t.equal(clusterVersionOf([], '0.1.0'), '0.1.0');
  },
);

t.test('a build understands the commands of its version and older only', async (t) => {
  t.notOk(understoodKvCommands('0.1.0').has('sync'), '0.1.0 does not know sync');
  t.ok(understoodKvCommands('0.2.0').has('sync'), '0.2.0 does');
  t.ok(understoodKvCommands('0.1.0').has('put'));
  t.notOk(understoodKvCommands('0.2.0').has('memberAttributes'), 'server commands are not KV');
  t.ok(understandsServerCommand('memberAttributes', '0.1.0'));
  t.notOk(understandsServerCommand('put', '0.2.0'), 'a KV command is not a server command');
  t.notOk(understandsServerCommand('memberRetire', '0.2.0'), 'an unknown one');
  for (const [kind, introduced] of Object.entries(COMMAND_INTRODUCED_IN)) {
    t.ok(commandsOf(introduced).has(kind), `${kind} is in ${introduced}`);
  }
});

t.test(
  'the gate refuses a command the cluster version does not have, with the versions',
  async (t) => {
    // A 0.2.0 member among 0.1.0 ones.
    const gate = new ClusterVersionGate(['0.2.0', '0.1.0', '0.2.0'], '0.2.0');
    t.equal(gate.version, '0.1.0');
    t.equal(gate.refusal('put'), undefined, 'an old command is fine');
    const refusal = gate.refusal('sync');
    t.equal(refusal?.code, 'cluster_version_too_old');
    t.match(refusal?.message, /needs cluster version 0\.2\.0; the cluster version is 0\.1\.0/);

    t.equal(gate.update(['0.2.0', undefined, '0.2.0']), undefined, 'unpublished: still 0.1.0');
    t.not(gate.refusal('sync'), undefined);
    t.equal(gate.update(['0.2.0', '0.2.0', '0.2.0']), '0.1.0', 'changed from 0.1.0');
    t.equal(gate.version, '0.2.0');
    t.equal(gate.refusal('sync'), undefined, 'every member upgraded: allowed');

    // A rollback: a member back on 0.1.0 publishes it, and the gate closes again.
    gate.update(['0.2.0', '0.1.0', '0.2.0']);
    t.not(gate.refusal('sync'), undefined);
  },
);

t.test(
  'a member never proposes what its own build does not know, whatever the cluster says',
  async (t) => {
    const gate = new ClusterVersionGate(['0.2.0', '0.2.0', '0.2.0'], '0.1.0');
    t.equal(gate.version, '0.2.0');
    t.match(gate.refusal('sync'), {
      code: 'cluster_version_too_old',
      message: /not known to raftkv 0\.1\.0/,
    });
    t.match(gate.refusal('explode'), { code: 'cluster_version_too_old' }, 'an unknown kind');
  },
);
