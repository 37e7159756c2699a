/**
 * The state machine's auth part (API.md "Security"): users and roles, the
 * rules that keep root usable, per-user auth revisions (what makes a token
 * stop working), permits() prefix semantics, the apply-time permission check,
 * and that snapshots and persisted records carry the whole auth state.
 */
import fc from 'fast-check';
import t, { type Test } from 'tap';
import type { Permission } from '../../src/kv/auth.js';
import {
  type Command,
  type CommandResult,
  ELECTION_PREFIX,
  encodeCommand,
  isSkipped,
  KvStateMachine,
  REGISTRY_PREFIX,
} from '../../src/kv/index.js';
import { bytesEqual, RecordStore } from './helpers.js';

/** Feeds entries as Raft would, each as `user` (absent: the system or auth off). */
class Machine {
  index = 0;
  readonly persisted = new RecordStore();
  constructor(public sm = new KvStateMachine()) {
    this.index = sm.appliedIndex;
  }
  run(cmd: Command, user?: string, idempotencyKey?: string, atMs = 1_000): CommandResult {
    const data = encodeCommand({
      v: 1,
      atMs,
      cmd,
      ...(user !== undefined ? { user } : {}),
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
    });
    const result = this.sm.apply(++this.index, data);
    if (isSkipped(result)) throw new Error('skipped');
    this.persisted.write(this.sm.takeMutations());
    return result;
  }
}

const code = (r: CommandResult) => (r.ok ? 'ok' : r.code);
const kv = (prefix: string, access: Permission['access']): Permission => ({
  resource: 'kv',
  prefix,
  access,
});

/** root (role root), alice (role app: readwrite kv app/), bob (role reader: read kv app/). */
function withUsers(enable = true): Machine {
  const m = new Machine();
  m.run({ type: 'authRolePut', name: 'app', permissions: [kv('app/', 'readwrite')] });
  m.run({ type: 'authRolePut', name: 'reader', permissions: [kv('app/', 'read')] });
  m.run({ type: 'authUserPut', name: 'root', passwordHash: 'h-root', roles: ['root'] });
  m.run({ type: 'authUserPut', name: 'alice', passwordHash: 'h-alice', roles: ['app'] });
  m.run({ type: 'authUserPut', name: 'bob', passwordHash: 'h-bob', roles: ['reader'] });
  if (enable) t.equal(code(m.run({ type: 'authEnable', signingKey: 'key-1' })), 'ok');
  return m;
}

t.test('users: created flag, role_not_found, roles kept as a sorted set', (t) => {
  const m = new Machine();
  const first = m.run({ type: 'authUserPut', name: 'u', passwordHash: 'h1' });
  t.match(first, { ok: true, op: 'authUserPut', created: true, user: { name: 'u', roles: [] } });
  t.notOk('passwordHash' in (first as { user: object }).user, 'the result shows no hash');
  t.equal(code(m.run({ type: 'authUserPut', name: 'u', roles: ['nope'] })), 'role_not_found');
  t.equal(m.sm.auth.user('u')?.passwordHash, 'h1', 'a refused put changes nothing');
  m.run({ type: 'authRolePut', name: 'b', permissions: [] });
  m.run({ type: 'authRolePut', name: 'a', permissions: [] });
  const second = m.run({ type: 'authUserPut', name: 'u', roles: ['b', 'a', 'b'] });
  t.match(second, { ok: true, created: false, user: { name: 'u', roles: ['a', 'b'] } });
  t.equal(m.sm.auth.user('u')?.passwordHash, 'h1', 'a field left out keeps its value');
  t.match(m.run({ type: 'authUserPut', name: 'u', passwordHash: null }), { created: false });
  t.equal(m.sm.auth.user('u')?.passwordHash, null, 'null removes the password');
  t.same(m.sm.auth.user('u')?.roles, ['a', 'b']);
  t.equal(code(m.run({ type: 'authUserDelete', name: 'u' })), 'ok');
  t.equal(m.sm.auth.user('u'), undefined);
  t.equal(code(m.run({ type: 'authUserDelete', name: 'u' })), 'user_not_found');
  t.equal(code(m.run({ type: 'authRoleDelete', name: 'zzz' })), 'role_not_found');
  t.end();
});

t.test('roles: created flag, and the root role cannot be changed or deleted', (t) => {
  const m = new Machine();
  t.match(m.run({ type: 'authRolePut', name: 'r', permissions: [kv('a', 'read')] }), {
    created: true,
    role: { name: 'r', permissions: [kv('a', 'read')] },
  });
  t.match(m.run({ type: 'authRolePut', name: 'r', permissions: [kv('b', 'write')] }), {
    created: false,
    role: { permissions: [kv('b', 'write')] },
  });
  const revision = m.sm.auth.revision;
  t.equal(code(m.run({ type: 'authRolePut', name: 'root', permissions: [] })), 'invalid_request');
  t.equal(code(m.run({ type: 'authRoleDelete', name: 'root' })), 'invalid_request');
  t.equal(m.sm.auth.revision, revision, 'refusals change nothing');
  t.same(
    m.sm.auth.allRoles().map((r) => r.name),
    ['root', 'r'],
  );
  t.end();
});

t.test('root: enable needs it, and it cannot be lost while enabled', (t) => {
  const m = new Machine();
  t.equal(code(m.run({ type: 'authEnable', signingKey: 'k' })), 'invalid_request', 'no root');
  m.run({ type: 'authUserPut', name: 'root', passwordHash: 'h' });
  t.equal(
    code(m.run({ type: 'authEnable', signingKey: 'k' })),
    'invalid_request',
    'root without the role root',
  );
  m.run({ type: 'authUserPut', name: 'admin', roles: ['root'] });
  t.equal(
    code(m.run({ type: 'authEnable', signingKey: 'k' })),
    'invalid_request',
    'another user with the role root is not enough',
  );
  t.notOk(m.sm.auth.enabled);
  m.run({ type: 'authUserPut', name: 'root', roles: ['root'] });
  t.equal(code(m.run({ type: 'authEnable', signingKey: 'k1' })), 'ok');
  t.ok(m.sm.auth.enabled);
  t.equal(m.sm.auth.signingKey, 'k1');
  t.equal(code(m.run({ type: 'authEnable', signingKey: 'k2' })), 'ok');
  t.equal(m.sm.auth.signingKey, 'k1', 'enabling again keeps the key (tokens stay valid)');
  t.equal(code(m.run({ type: 'authUserDelete', name: 'root' })), 'invalid_request');
  t.equal(code(m.run({ type: 'authUserPut', name: 'root', roles: [] })), 'invalid_request');
  t.same(m.sm.auth.user('root')?.roles, ['root'], 'root keeps its role');
  t.equal(code(m.run({ type: 'authUserPut', name: 'root', passwordHash: 'h2' })), 'ok');
  t.equal(code(m.run({ type: 'authDisable' })), 'ok');
  t.notOk(m.sm.auth.enabled);
  t.equal(code(m.run({ type: 'authUserPut', name: 'root', roles: [] })), 'ok', 'disabled: fine');
  t.equal(code(m.run({ type: 'authUserDelete', name: 'root' })), 'ok');
  m.run({ type: 'authUserPut', name: 'root', roles: ['root'] });
  t.equal(code(m.run({ type: 'authEnable', signingKey: 'k3' })), 'ok');
  t.equal(m.sm.auth.signingKey, 'k3', 'a new enable replaces the key');
  t.end();
});

t.test("a user's revision changes exactly when its password or roles change", (t) => {
  const m = withUsers(false);
  m.run({ type: 'authRolePut', name: 'extra', permissions: [] });
  const rev = (name: string) => m.sm.auth.user(name)!.revision;
  const steps: [string, Command, boolean][] = [
    ['same password hash', { type: 'authUserPut', name: 'alice', passwordHash: 'h-alice' }, false],
    ['same roles', { type: 'authUserPut', name: 'alice', roles: ['app'] }, false],
    ['same roles, repeated', { type: 'authUserPut', name: 'alice', roles: ['app', 'app'] }, false],
    ['no fields', { type: 'authUserPut', name: 'alice' }, false],
    ['another user changes', { type: 'authUserPut', name: 'bob', passwordHash: 'x' }, false],
    [
      'a role it holds changes permissions',
      { type: 'authRolePut', name: 'app', permissions: [kv('app/', 'readwrite'), kv('b', 'read')] },
      false,
    ],
    ['a role it does not hold is deleted', { type: 'authRoleDelete', name: 'reader' }, false],
    ['enable', { type: 'authEnable', signingKey: 'k' }, false],
    ['new password', { type: 'authUserPut', name: 'alice', passwordHash: 'h2' }, true],
    ['role added', { type: 'authUserPut', name: 'alice', roles: ['app', 'extra'] }, true],
    ['role removed', { type: 'authUserPut', name: 'alice', roles: ['extra'] }, true],
    ['a role it holds is deleted', { type: 'authRoleDelete', name: 'extra' }, true],
  ];
  for (const [what, cmd, changes] of steps) {
    const before = rev('alice');
    const authBefore = m.sm.auth.revision;
    t.equal(code(m.run(cmd)), 'ok', what);
    t.ok(m.sm.auth.revision > authBefore, `${what}: the auth revision moves`);
    if (changes) t.not(rev('alice'), before, `${what}: alice's revision changes`);
    else t.equal(rev('alice'), before, `${what}: alice's revision stays`);
  }
  t.same(m.sm.auth.user('alice')?.roles, [], 'the deleted role was taken from alice');
  const recreatedBefore = rev('alice');
  m.run({ type: 'authUserDelete', name: 'alice' });
  m.run({ type: 'authUserPut', name: 'alice', passwordHash: 'h2' });
  t.not(rev('alice'), recreatedBefore, 'a user deleted and made again has a new revision');
  t.end();
});

t.test('permits(): a permission covers keys and ranges that start with its prefix', (t) => {
  const m = withUsers(false);
  m.run({
    type: 'authRolePut',
    name: 'mixed',
    permissions: [
      { resource: 'registry', prefix: 'svc/', access: 'write' },
      { resource: 'locks', prefix: '', access: 'read' },
    ],
  });
  m.run({ type: 'authUserPut', name: 'carol', roles: ['mixed', 'reader'] });
  m.run({ type: 'authUserPut', name: 'nobody' });
  const a = m.sm.auth;
  const cases: [string, Parameters<typeof a.permits>[1], boolean][] = [
    ['alice', { resource: 'kv', key: 'app/x', access: 'write' }, true],
    ['alice', { resource: 'kv', key: 'app/x', access: 'read' }, true],
    ['alice', { resource: 'kv', key: 'app/', access: 'read' }, true],
    ['alice', { resource: 'kv', key: 'app/deep/er', access: 'write' }, true],
    ['alice', { resource: 'kv', key: 'app', access: 'read' }, false],
    ['alice', { resource: 'kv', key: 'ap', access: 'read' }, false],
    ['alice', { resource: 'kv', key: '', access: 'read' }, false],
    ['alice', { resource: 'kv', key: 'other/app/x', access: 'read' }, false],
    ['alice', { resource: 'registry', key: 'app/x', access: 'read' }, false],
    ['bob', { resource: 'kv', key: 'app/x', access: 'read' }, true],
    ['bob', { resource: 'kv', key: 'app/x', access: 'write' }, false],
    ['carol', { resource: 'registry', key: 'svc/a', access: 'write' }, true],
    ['carol', { resource: 'registry', key: 'svc/a', access: 'read' }, false],
    ['carol', { resource: 'locks', key: '', access: 'read' }, true],
    ['carol', { resource: 'locks', key: 'any', access: 'read' }, true],
    ['carol', { resource: 'locks', key: 'any', access: 'write' }, false],
    ['carol', { resource: 'kv', key: 'app/x', access: 'read' }, true],
    ['carol', { resource: 'elections', key: 'svc/a', access: 'read' }, false],
    ['root', { resource: 'kv', key: '', access: 'write' }, true],
    ['root', { resource: 'elections', key: 'x', access: 'read' }, true],
    ['nobody', { resource: 'kv', key: 'app/x', access: 'read' }, false],
    ['ghost', { resource: 'kv', key: 'app/x', access: 'read' }, false],
  ];
  for (const [user, need, expected] of cases)
    t.equal(
      a.permits(user, need),
      expected,
      `${user} ${need.access} ${need.resource} "${need.key}"`,
    );
  m.run({ type: 'authRoleDelete', name: 'reader' });
  t.notOk(a.permits('bob', { resource: 'kv', key: 'app/x', access: 'read' }), 'role deleted');
  m.run({ type: 'authRolePut', name: 'app', permissions: [] });
  t.notOk(a.permits('alice', { resource: 'kv', key: 'app/x', access: 'read' }), 'role emptied');
  t.end();
});

/** Runs `cmd` as `user` and checks it was refused and changed nothing, not even a record. */
function refused(t: Test, m: Machine, user: string, cmd: Command, what: string): void {
  const before = m.sm.snapshot();
  const revision = m.sm.revision;
  const result = m.run(cmd, user);
  t.equal(code(result), 'permission_denied', `${what}: permission_denied`);
  t.equal(m.sm.revision, revision, `${what}: no new revision`);
  t.ok(bytesEqual(m.sm.snapshot(), before), `${what}: the state is unchanged`);
}

t.test('apply: a non-root user is refused outside its permissions, and nothing changes', (t) => {
  const m = withUsers();
  t.equal(code(m.run({ type: 'put', key: 'app/x', value: '1' }, 'alice')), 'ok');
  refused(t, m, 'alice', { type: 'put', key: 'other/x', value: '1' }, 'put outside');
  refused(t, m, 'bob', { type: 'put', key: 'app/x', value: '2' }, 'put with read only');
  refused(t, m, 'bob', { type: 'delete', key: 'app/x' }, 'delete with read only');
  refused(t, m, 'alice', { type: 'delete', key: 'app', prefix: true }, 'a wider prefix delete');
  refused(
    t,
    m,
    'alice',
    {
      type: 'txn',
      compare: [],
      success: [
        { op: 'put', key: 'app/y', value: '2' },
        { op: 'put', key: 'other/y', value: '2' },
      ],
      failure: [],
    },
    'a txn with one key outside',
  );
  refused(
    t,
    m,
    'alice',
    {
      type: 'txn',
      compare: [{ key: 'secret', target: 'value', op: '==', value: 'x' }],
      success: [{ op: 'put', key: 'app/y', value: '2' }],
      failure: [],
    },
    'a txn comparing a key outside',
  );
  refused(
    t,
    m,
    'alice',
    { type: 'txn', compare: [], success: [], failure: [{ op: 'put', key: 'z', value: '' }] },
    'a txn whose other branch writes outside',
  );
  refused(t, m, 'alice', { type: 'compact', revision: 1 }, 'compact');
  refused(t, m, 'alice', { type: 'authUserPut', name: 'alice', roles: ['root'] }, 'self-promotion');
  refused(
    t,
    m,
    'alice',
    { type: 'authRolePut', name: 'app', permissions: [kv('', 'readwrite')] },
    'role change',
  );
  refused(t, m, 'alice', { type: 'authDisable' }, 'disable');
  refused(t, m, 'ghost', { type: 'put', key: 'app/x', value: '1' }, 'an unknown user');
  t.equal(m.sm.get('app/x').ok && m.sm.get('app/x').kv?.value, '1');
  t.equal(code(m.run({ type: 'put', key: 'other/x', value: 'r' }, 'root')), 'ok', 'root may');
  t.equal(code(m.run({ type: 'put', key: 'other/y', value: 's' })), 'ok', 'the system may');

  // A permission taken away after the API checked it is caught when the entry applies.
  m.run({ type: 'authUserPut', name: 'alice', roles: [] }, 'root');
  refused(t, m, 'alice', { type: 'put', key: 'app/x', value: '3' }, 'roles taken away');
  m.run({ type: 'authDisable' }, 'root');
  t.equal(
    code(m.run({ type: 'put', key: 'other/z', value: '1' }, 'alice')),
    'ok',
    'auth off: no checks',
  );
  t.end();
});

t.test("apply: another user's lease cannot be used, kept alive or revoked", (t) => {
  const m = withUsers();
  t.equal(code(m.run({ type: 'leaseGrant', id: 'L', ttlMs: 60_000, owner: 'bob' }, 'bob')), 'ok');
  t.equal(
    code(m.run({ type: 'leaseGrant', id: 'A', ttlMs: 60_000, owner: 'alice' }, 'alice')),
    'ok',
  );
  refused(t, m, 'alice', { type: 'put', key: 'app/l', value: '1', lease: 'L' }, 'attach');
  refused(
    t,
    m,
    'alice',
    {
      type: 'txn',
      compare: [],
      success: [{ op: 'put', key: 'app/l', value: '1', lease: 'L' }],
      failure: [],
    },
    'attach in a txn',
  );
  refused(t, m, 'alice', { type: 'leaseKeepAlive', id: 'L' }, 'keepalive');
  refused(t, m, 'alice', { type: 'leaseRevoke', id: 'L' }, 'revoke');
  refused(
    t,
    m,
    'alice',
    { type: 'leaseGrant', id: 'M', ttlMs: 60_000, owner: 'bob' },
    'grant as another',
  );
  refused(t, m, 'alice', { type: 'leaseGrant', id: 'N', ttlMs: 60_000 }, 'grant without owner');
  t.equal(
    code(m.run({ type: 'put', key: 'app/a', value: '1', lease: 'A' }, 'alice')),
    'ok',
    'own lease',
  );
  t.equal(code(m.run({ type: 'leaseKeepAlive', id: 'A' }, 'alice')), 'ok');
  t.equal(code(m.run({ type: 'leaseKeepAlive', id: 'L' }, 'root')), 'ok', 'root may');
  t.equal(code(m.run({ type: 'leaseKeepAlive', id: 'L' }, 'bob')), 'ok', 'the owner may');
  t.equal(code(m.run({ type: 'leaseRevoke', id: 'L' })), 'ok', 'the system may (expiry)');
  t.equal(code(m.run({ type: 'leaseRevoke', id: 'A' }, 'alice')), 'ok');
  t.end();
});

t.test("apply: the registry's and elections' own txns need only write on their name", (t) => {
  const m = withUsers();
  m.run({
    type: 'authRolePut',
    name: 'coord',
    permissions: [
      { resource: 'registry', prefix: 'svc/', access: 'write' },
      { resource: 'elections', prefix: 'e', access: 'write' },
    ],
  });
  m.run({ type: 'authUserPut', name: 'w', roles: ['coord'] }, 'root');
  const reg = `${REGISTRY_PREFIX}svc/a`;
  // What PUT /v1/registry/{name} proposes: create if absent, else show the holder.
  const register: Command = {
    type: 'txn',
    compare: [{ key: reg, target: 'createRevision', op: '==', value: 0 }],
    success: [{ op: 'put', key: reg, value: 'v' }],
    failure: [{ op: 'get', key: reg }],
  };
  t.match(m.run(register, 'w'), { ok: true, succeeded: true }, 'register');
  t.match(m.run(register, 'w'), { ok: true, succeeded: false }, 'register again: sees the holder');
  const candidate = `${ELECTION_PREFIX}e1/0001`;
  m.run({ type: 'put', key: candidate, value: 'first' });
  const proclaim: Command = {
    type: 'txn',
    compare: [{ key: candidate, target: 'createRevision', op: '>', value: 0 }],
    success: [{ op: 'put', key: candidate, value: 'second' }],
    failure: [],
  };
  t.match(m.run(proclaim, 'w'), { ok: true, succeeded: true }, 'proclaim');
  const unregister: Command = {
    type: 'txn',
    compare: [{ key: reg, target: 'createRevision', op: '>', value: 0 }],
    success: [{ op: 'delete', key: reg }],
    failure: [{ op: 'get', key: reg }],
  };
  t.match(m.run(unregister, 'w'), { ok: true, succeeded: true }, 'unregister');
  // Reading another name, or a name outside the permission, still needs what it needs.
  const other = `${REGISTRY_PREFIX}svc/b`;
  m.run({ type: 'put', key: other, value: 'secret' });
  refused(
    t,
    m,
    'w',
    {
      type: 'txn',
      compare: [],
      success: [
        { op: 'put', key: reg, value: 'v' },
        { op: 'get', key: other },
      ],
      failure: [],
    },
    'a get of another name',
  );
  refused(
    t,
    m,
    'w',
    {
      ...register,
      compare: [],
      success: [{ op: 'put', key: `${REGISTRY_PREFIX}x`, value: 'v' }],
    } as Command,
    'a name outside the prefix',
  );
  m.run({ type: 'authRolePut', name: 'wonly', permissions: [kv('w/', 'write')] }, 'root');
  m.run({ type: 'authUserPut', name: 'v', roles: ['wonly'] }, 'root');
  refused(
    t,
    m,
    'v',
    {
      type: 'txn',
      compare: [{ key: 'w/k', target: 'version', op: '==', value: 0 }],
      success: [{ op: 'put', key: 'w/k', value: '1' }],
      failure: [{ op: 'get', key: 'w/k' }],
    },
    'a kv txn reading the key it writes, with write only',
  );
  t.end();
});

t.test('a refusal is remembered under its Idempotency-Key like any result', (t) => {
  const m = withUsers();
  const first = m.run({ type: 'put', key: 'other/k', value: '1' }, 'alice', 'K');
  t.equal(code(first), 'permission_denied');
  t.same(m.run({ type: 'put', key: 'other/k', value: '1' }, 'alice', 'K'), first);
  t.equal(
    code(m.run({ type: 'put', key: 'other/k', value: '1' }, 'root', 'K')),
    'ok',
    "root's K is another write",
  );
  t.end();
});

function authState(sm: KvStateMachine) {
  const a = sm.auth;
  return {
    enabled: a.enabled,
    revision: a.revision,
    signingKey: a.signingKey,
    users: a.allUsers(),
    roles: a.allRoles(),
  };
}

t.test('snapshot → restore and records → load keep the whole auth state', (t) => {
  const m = withUsers();
  m.run({ type: 'put', key: 'app/x', value: '1' }, 'alice');
  m.run({ type: 'authRoleDelete', name: 'reader' }, 'root');
  m.run({ type: 'authUserPut', name: 'dave', passwordHash: null }, 'root');
  const expected = authState(m.sm);
  t.equal(expected.users.length, 4);
  t.ok(expected.revision > 0);
  const snap = m.sm.snapshot();
  const restored = KvStateMachine.restore(snap, m.sm.appliedIndex);
  const loaded = KvStateMachine.load([...m.sm.records()], m.sm.appliedIndex);
  const fromDisk = KvStateMachine.load([...m.persisted.records], m.sm.appliedIndex);
  for (const [what, sm] of [
    ['restore', restored],
    ['load', loaded],
    ['load from the persisted mutations', fromDisk],
  ] as const) {
    t.same(authState(sm), expected, `${what}: same users, roles, flag, key and revision`);
    t.ok(bytesEqual(sm.snapshot(), snap), `${what}: equal snapshot bytes`);
    t.ok(sm.auth.permits('alice', { resource: 'kv', key: 'app/x', access: 'write' }));
    const again = new Machine(sm);
    t.equal(
      code(again.run({ type: 'put', key: 'nope', value: '1' }, 'alice')),
      'permission_denied',
      `${what}: still enforced`,
    );
  }
  // And they keep agreeing with the original afterwards.
  const other = new Machine(restored);
  for (const [cmd, user] of [
    [{ type: 'authUserPut', name: 'alice', passwordHash: 'new' }, 'root'],
    [{ type: 'authRoleDelete', name: 'app' }, 'root'],
    [{ type: 'authDisable' }, 'root'],
  ] as const) {
    t.same(other.run(cmd, user), m.run(cmd, user));
  }
  t.ok(bytesEqual(other.sm.snapshot(), m.sm.snapshot()), 'equal after more changes');
  t.end();
});

t.test('a state that never touched auth has no auth records', (t) => {
  const m = new Machine();
  m.run({ type: 'put', key: 'a', value: '1' });
  t.notOk(
    [...m.sm.records()].some(([key]) => key.startsWith('a/')),
    JSON.stringify([...m.sm.records()].map(([k]) => k)),
  );
  t.end();
});

// ---- a model: random auth commands vs a tiny in-memory model ---------------

const ROLE_NAMES = ['root', 'r1', 'r2', 'r3'] as const;
const USER_NAMES = ['root', 'u1', 'u2'] as const;

const permission: fc.Arbitrary<Permission> = fc.record({
  resource: fc.constantFrom('kv', 'registry', 'locks', 'elections'),
  prefix: fc.constantFrom('', 'a', 'ab', 'b/'),
  access: fc.constantFrom('read', 'write', 'readwrite'),
});

const authCommand: fc.Arbitrary<Command> = fc.oneof(
  fc.record(
    {
      type: fc.constant('authUserPut' as const),
      name: fc.constantFrom(...USER_NAMES),
      passwordHash: fc.constantFrom('h1', 'h2', null),
      roles: fc.subarray([...ROLE_NAMES, 'r9']),
    },
    { requiredKeys: ['type', 'name'] },
  ),
  fc.record({ type: fc.constant('authUserDelete' as const), name: fc.constantFrom(...USER_NAMES) }),
  fc.record({
    type: fc.constant('authRolePut' as const),
    name: fc.constantFrom(...ROLE_NAMES),
    permissions: fc.array(permission, { maxLength: 3 }),
  }),
  fc.record({ type: fc.constant('authRoleDelete' as const), name: fc.constantFrom(...ROLE_NAMES) }),
  fc.record({ type: fc.constant('authEnable' as const), signingKey: fc.constantFrom('k1', 'k2') }),
  fc.record({ type: fc.constant('authDisable' as const) }),
);

interface ModelUser {
  hash: string | null;
  roles: string[];
  /** Bumped whenever the password or roles change: the machine's revision must move with it. */
  version: number;
}

class Model {
  users = new Map<string, ModelUser>();
  roles = new Map<string, Permission[]>();
  enabled = false;

  /** The expected result code. */
  apply(cmd: Command): string {
    switch (cmd.type) {
      case 'authUserPut': {
        if (cmd.roles?.some((r) => r !== 'root' && !this.roles.has(r))) return 'role_not_found';
        if (this.enabled && cmd.name === 'root' && cmd.roles && !cmd.roles.includes('root'))
          return 'invalid_request';
        const cur = this.users.get(cmd.name);
        const hash = cmd.passwordHash !== undefined ? cmd.passwordHash : (cur?.hash ?? null);
        const roles = cmd.roles ? [...new Set(cmd.roles)].sort() : (cur?.roles ?? []);
        const changed = !cur || cur.hash !== hash || cur.roles.join() !== roles.join();
        this.users.set(cmd.name, { hash, roles, version: (cur?.version ?? 0) + (changed ? 1 : 0) });
        return 'ok';
      }
      case 'authUserDelete':
        if (this.enabled && cmd.name === 'root') return 'invalid_request';
        return this.users.delete(cmd.name) ? 'ok' : 'user_not_found';
      case 'authRolePut':
        if (cmd.name === 'root') return 'invalid_request';
        this.roles.set(cmd.name, [...cmd.permissions]);
        return 'ok';
      case 'authRoleDelete':
        if (cmd.name === 'root') return 'invalid_request';
        if (!this.roles.delete(cmd.name)) return 'role_not_found';
        for (const u of this.users.values()) {
          if (!u.roles.includes(cmd.name)) continue;
          u.roles = u.roles.filter((r) => r !== cmd.name);
          u.version++;
        }
        return 'ok';
      case 'authEnable':
        if (!this.users.get('root')?.roles.includes('root')) return 'invalid_request';
        this.enabled = true;
        return 'ok';
      case 'authDisable':
        this.enabled = false;
        return 'ok';
      default:
        throw new Error('not an auth command');
    }
  }

  permits(user: string, resource: string, key: string, access: 'read' | 'write'): boolean {
    const u = this.users.get(user);
    if (!u) return false;
    if (u.roles.includes('root')) return true;
    return u.roles.some((r) =>
      (this.roles.get(r) ?? []).some(
        (p) =>
          p.resource === resource &&
          key.startsWith(p.prefix) &&
          (p.access === 'readwrite' || p.access === access),
      ),
    );
  }
}

t.test('model: random auth commands agree with a tiny model, and survive restore', (t) => {
  fc.assert(
    fc.property(fc.array(authCommand, { minLength: 1, maxLength: 40 }), (cmds) => {
      const m = new Machine();
      const twin = new Machine();
      const model = new Model();
      const seen = new Map<string, { version: number; revision: number }>();
      for (const cmd of cmds) {
        const expected = model.apply(cmd);
        const got = m.run(cmd);
        if (JSON.stringify(twin.run(cmd)) !== JSON.stringify(got)) throw new Error('twin differs');
        if (code(got) !== expected)
          throw new Error(`${JSON.stringify(cmd)}: ${code(got)}, model says ${expected}`);
        if (m.sm.auth.enabled !== model.enabled) throw new Error('enabled differs');
        const users = m.sm.auth.allUsers();
        if (users.map((u) => u.name).join() !== [...model.users.keys()].sort().join())
          throw new Error(`users differ: ${JSON.stringify(users)}`);
        for (const u of users) {
          const mu = model.users.get(u.name)!;
          if (u.passwordHash !== mu.hash || u.roles.join() !== mu.roles.join())
            throw new Error(`user ${u.name} differs`);
          const last = seen.get(u.name);
          // The revision moves exactly when the model's version does (a re-created user always moves).
          if (
            last !== undefined &&
            (last.version === mu.version) !== (last.revision === u.revision)
          )
            throw new Error(
              `user ${u.name}: revision ${last.revision}→${u.revision}, version ${last.version}→${mu.version}`,
            );
          seen.set(u.name, { version: mu.version, revision: u.revision });
        }
        for (const name of seen.keys()) if (!model.users.has(name)) seen.delete(name);
        for (const user of USER_NAMES)
          for (const resource of ['kv', 'registry', 'locks', 'elections'] as const)
            for (const key of ['', 'a', 'ab', 'abc', 'b/', 'b/x', 'c'])
              for (const access of ['read', 'write'] as const)
                if (
                  m.sm.auth.permits(user, { resource, key, access }) !==
                  model.permits(user, resource, key, access)
                )
                  throw new Error(`permits(${user}, ${resource}, ${key}, ${access}) differs`);
      }
      const snap = m.sm.snapshot();
      if (!bytesEqual(twin.sm.snapshot(), snap)) throw new Error('replicas differ');
      const restored = KvStateMachine.restore(snap, m.sm.appliedIndex);
      const loaded = KvStateMachine.load([...m.persisted.records], m.sm.appliedIndex);
      for (const sm of [restored, loaded]) {
        if (JSON.stringify(authState(sm)) !== JSON.stringify(authState(m.sm)))
          throw new Error('restored auth state differs');
        if (!bytesEqual(sm.snapshot(), snap)) throw new Error('restored snapshot bytes differ');
      }
    }),
    { numRuns: 200, seed: 4242 },
  );
  t.end();
});

const KEYS = ['a', 'ab', 'abc', 'b/x', 'c'] as const;
const kvKey = fc.constantFrom(...KEYS);
const txnOp = fc.oneof(
  fc.record({ op: fc.constant('put' as const), key: kvKey, value: fc.constantFrom('1', '2') }),
  fc.record({ op: fc.constant('get' as const), key: kvKey, prefix: fc.boolean() }),
  fc.record({ op: fc.constant('delete' as const), key: kvKey }),
);
const userCommand: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key: kvKey, value: fc.constantFrom('1', '2') }),
  fc.record({ type: fc.constant('delete' as const), key: kvKey, prefix: fc.boolean() }),
  fc.record({
    type: fc.constant('txn' as const),
    compare: fc.array(
      fc.record({
        key: kvKey,
        target: fc.constant('version' as const),
        op: fc.constant('>' as const),
        value: fc.constant(0),
      }),
      { maxLength: 2 },
    ),
    success: fc.array(txnOp, { maxLength: 2 }),
    failure: fc.array(txnOp, { maxLength: 2 }),
  }),
);

/** What the model says `cmd` needs: [key, access] pairs on kv. */
function needsOf(cmd: Command): [string, 'read' | 'write'][] {
  switch (cmd.type) {
    case 'put':
    case 'delete':
      return [[cmd.key, 'write']];
    case 'txn':
      return [
        ...cmd.compare.map((c) => ['key' in c ? c.key : '', 'read'] as [string, 'read']),
        ...[...cmd.success, ...cmd.failure].map(
          (op) => [op.key, op.op === 'get' ? 'read' : 'write'] as [string, 'read' | 'write'],
        ),
      ];
    default:
      throw new Error('not a kv command');
  }
}

t.test('model: a user command is applied only if every key it touches is permitted', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.array(permission, { maxLength: 3 }), { minLength: 2, maxLength: 2 }),
      fc.array(fc.tuple(fc.constantFrom('u1', 'u2', 'root'), userCommand), { maxLength: 25 }),
      (rolePermissions, steps) => {
        const m = new Machine();
        const model = new Model();
        const setup: Command[] = [
          { type: 'authRolePut', name: 'r1', permissions: rolePermissions[0]! },
          { type: 'authRolePut', name: 'r2', permissions: rolePermissions[1]! },
          { type: 'authUserPut', name: 'root', roles: ['root'] },
          { type: 'authUserPut', name: 'u1', roles: ['r1'] },
          { type: 'authUserPut', name: 'u2', roles: ['r1', 'r2'] },
          { type: 'authEnable', signingKey: 'k' },
        ];
        for (const cmd of setup) if (m.run(cmd) && model.apply(cmd) !== 'ok') return false;
        for (const [user, cmd] of steps) {
          const permitted = needsOf(cmd).every(([key, access]) =>
            model.permits(user, 'kv', key, access),
          );
          const before = m.sm.snapshot();
          const result = m.run(cmd, user);
          const denied = !result.ok && result.code === 'permission_denied';
          if (denied === permitted)
            throw new Error(
              `${user} ${JSON.stringify(cmd)}: ${code(result)}, permitted ${permitted}`,
            );
          if (denied && !bytesEqual(m.sm.snapshot(), before))
            throw new Error(`${user} ${JSON.stringify(cmd)}: refused but changed the state`);
        }
        return true;
      },
    ),
    { numRuns: 300, seed: 7 },
  );
  t.end();
});

t.test('an anonymous client write that applies after auth was enabled is refused', (t) => {
  const m = withUsers(false);
  const anonymousPut = (key: string) =>
    m.sm.apply(
      ++m.index,
      encodeCommand({
        v: 1,
        atMs: 1_000,
        anonymous: true,
        cmd: { type: 'put', key, value: 'v' },
      }),
    ) as CommandResult;
  t.equal(code(anonymousPut('before')), 'ok', 'while auth is off, anonymous clients may write');
  t.equal(code(m.run({ type: 'authEnable', signingKey: 'key-1' })), 'ok');
  const revision = m.sm.revision;
  // A member that had not applied the enable yet admitted it without credentials.
  t.equal(code(anonymousPut('after')), 'unauthenticated');
  t.equal(m.sm.revision, revision, 'nothing applied');
  t.equal(m.sm.get('after').ok && m.sm.get('after').kv, null);
  t.equal(code(m.run({ type: 'put', key: 'system', value: 'v' })), 'ok', 'the system still writes');
  t.end();
});
