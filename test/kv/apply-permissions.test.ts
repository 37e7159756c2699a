/**
 * The state machine re-checks permissions at apply (API.md "What needs which
 * permission"): a write whose user lost the permission after the API's check,
 * or that reached the log without that check, is refused with nothing applied.
 */
import t, { type Test } from 'tap';
import { type Command, type CommandResult, encodeCommand } from '../../src/kv/index.js';
import { Feeder } from './helpers.js';

const REGISTRY = '\u0000registry/';

function setup() {
  const f = new Feeder();
  const asUser = (user: string, cmd: Command): CommandResult =>
    f.applyBytes(encodeCommand({ v: 1, atMs: f.nowMs, user, cmd }));
  f.apply({
    type: 'authRolePut',
    name: 'app',
    permissions: [
      { resource: 'kv', prefix: 'p/', access: 'readwrite' },
      { resource: 'registry', prefix: 'p', access: 'write' },
    ],
  });
  f.apply({ type: 'authUserPut', name: 'root', passwordHash: 'x', roles: ['root'] });
  f.apply({ type: 'authUserPut', name: 'bob', passwordHash: 'x', roles: ['app'] });
  f.apply({ type: 'authEnable', signingKey: 'a2V5' });
  f.put('q/secret', 'v');
  return { f, asUser };
}

const refused = (t: Test, r: CommandResult, what: string) => {
  t.equal(r.ok, false, `${what}: refused`);
  t.equal((r as { code?: string }).code, 'permission_denied', `${what}: permission_denied`);
};

t.test('writes outside the permission are refused at apply, nothing applied', async (t) => {
  const { f, asUser } = setup();
  const before = f.sm.revision;
  refused(t, asUser('bob', { type: 'put', key: 'q/x', value: '1' }), 'put outside');
  refused(t, asUser('bob', { type: 'delete', key: 'q/', prefix: true }), 'prefix delete outside');
  refused(
    t,
    asUser('bob', {
      type: 'txn',
      compare: [{ key: 'q/secret', target: 'value', op: '==', value: 'v' }],
      success: [{ op: 'put', key: 'p/x', value: '1' }],
      failure: [],
    }),
    'txn comparing a key outside',
  );
  refused(t, asUser('bob', { type: 'compact', revision: before }), 'compact');
  t.equal(f.sm.revision, before, 'the store did not move');
  t.equal(asUser('bob', { type: 'put', key: 'p/x', value: '1' }).ok, true, 'inside: applied');
  t.equal(asUser('root', { type: 'put', key: 'q/x', value: '1' }).ok, true, 'root: applied');
});

t.test('a permission taken away after the API checked is not used at apply', async (t) => {
  const { f, asUser } = setup();
  f.apply({ type: 'authRolePut', name: 'app', permissions: [] });
  const before = f.sm.revision;
  refused(t, asUser('bob', { type: 'put', key: 'p/x', value: '1' }), 'put after the revoke');
  t.equal(f.sm.revision, before, 'the store did not move');
});

t.test(
  'the registry writes as a txn guarding the name it writes: write on the name is enough',
  async (t) => {
    const { asUser } = setup();
    const key = `${REGISTRY}p1`;
    const register = asUser('bob', {
      type: 'txn',
      compare: [{ key, target: 'createRevision', op: '==', value: 0 }],
      success: [{ op: 'put', key, value: 'x' }],
      failure: [{ op: 'get', key }],
    });
    t.equal(register.ok, true, 'registering with write only');
    const other = `${REGISTRY}q1`;
    refused(
      t,
      asUser('bob', {
        type: 'txn',
        compare: [{ key: other, target: 'createRevision', op: '==', value: 0 }],
        success: [{ op: 'put', key: other, value: 'x' }],
        failure: [{ op: 'get', key: other }],
      }),
      'registering a name outside',
    );
  },
);
