import t, { type Test } from 'tap';
import type { AuthUser } from '../../src/kv/auth.js';
import {
  AuthError,
  Authenticator,
  type AuthStateView,
  hashPassword,
  newSigningKey,
} from '../../src/server/auth.js';

// The authenticator remembers tokens whose signature it checked. What it must
// still check on every use: expiry, the user's revision, the signing key.

interface World {
  auth: Authenticator;
  users: Map<string, AuthUser>;
  state: { signingKey: string | null };
  clock: { ms: number };
}

async function world(): Promise<World> {
  const users = new Map<string, AuthUser>();
  users.set('alice', {
    name: 'alice',
    passwordHash: await hashPassword('alicepw'),
    roles: [],
    revision: 5,
  } as AuthUser);
  const state = { signingKey: newSigningKey() as string | null };
  const clock = { ms: 1_000_000 };
  const view = (): AuthStateView => ({
    enabled: true,
    signingKey: state.signingKey,
    user: (name) => users.get(name),
    isRoot: () => false,
    permits: () => true,
  });
  const auth = new Authenticator(view, { tokenTtlSeconds: 60 }, () => clock.ms);
  return { auth, users, state, clock };
}

function refusal(t: Test, fn: () => unknown, pattern: RegExp, why: string): void {
  try {
    fn();
    t.fail(`${why}: accepted`);
  } catch (err) {
    t.ok(err instanceof AuthError && err.code === 'unauthenticated', `${why}: 401`);
    t.match((err as Error).message, pattern, why);
  }
}

t.test('a verified token is accepted again, until it expires', async (t) => {
  const w = await world();
  const { token } = await w.auth.issueToken('alice', 'alicepw');
  t.equal(w.auth.verifyToken(token), 'alice', 'first use: signature checked');
  t.equal(w.auth.verifyToken(token), 'alice', 'second use: remembered');
  w.clock.ms += 61_000;
  refusal(t, () => w.auth.verifyToken(token), /expired/, 'a remembered token still expires');
});

t.test('a remembered token stops working when its user changes or is deleted', async (t) => {
  const w = await world();
  const { token } = await w.auth.issueToken('alice', 'alicepw');
  t.equal(w.auth.verifyToken(token), 'alice');
  w.users.set('alice', { ...w.users.get('alice')!, revision: 6 });
  refusal(t, () => w.auth.verifyToken(token), /no longer valid/, 'user changed');
  w.users.delete('alice');
  refusal(t, () => w.auth.verifyToken(token), /no longer valid/, 'user deleted');
});

t.test('a new signing key forgets every remembered token', async (t) => {
  const w = await world();
  const { token } = await w.auth.issueToken('alice', 'alicepw');
  t.equal(w.auth.verifyToken(token), 'alice');
  w.state.signingKey = newSigningKey();
  refusal(t, () => w.auth.verifyToken(token), /invalid token/, 'signed under the old key');
  w.state.signingKey = null;
  refusal(t, () => w.auth.verifyToken(token), /invalid token/, 'auth has no key');
});

t.test(
  'a token that differs from a remembered one in any way is checked, and refused',
  async (t) => {
    const w = await world();
    const { token } = await w.auth.issueToken('alice', 'alicepw');
    t.equal(w.auth.verifyToken(token), 'alice');
    const [body, mac] = token.split('.') as [string, string];
    const otherMac = `${mac.slice(0, -2)}${mac.endsWith('AA') ? 'BB' : 'AA'}`;
    refusal(
      t,
      () => w.auth.verifyToken(`${body}.${otherMac}`),
      /invalid token/,
      'signature changed',
    );
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    const forged = Buffer.from(JSON.stringify({ ...claims, x: claims.x + 3_600_000 })).toString(
      'base64url',
    );
    refusal(t, () => w.auth.verifyToken(`${forged}.${mac}`), /invalid token/, 'claims changed');
    refusal(t, () => w.auth.verifyToken('garbage'), /invalid token/, 'no signature at all');
  },
);

t.test('a token is signature-checked once, then again only under a new key', async (t) => {
  const w = await world();
  const { token } = await w.auth.issueToken('alice', 'alicepw');
  // Counts the HMACs the authenticator computes (issuing one above does not count).
  const proto = Authenticator.prototype as unknown as { mac: (...args: unknown[]) => Buffer };
  const mac = proto.mac;
  let macs = 0;
  proto.mac = function (this: unknown, ...args: unknown[]) {
    macs++;
    return mac.apply(this, args);
  };
  t.teardown(() => {
    proto.mac = mac;
  });
  for (let i = 0; i < 5; i++) t.equal(w.auth.verifyToken(token), 'alice');
  t.equal(macs, 1, 'five uses, one signature check');
  const oldKey = w.state.signingKey;
  w.state.signingKey = newSigningKey();
  refusal(t, () => w.auth.verifyToken(token), /invalid token/, 'the old token under a new key');
  t.equal(macs, 2, 'a new key: checked again');
  w.state.signingKey = oldKey;
  t.equal(w.auth.verifyToken(token), 'alice', 'the old key back: valid again');
  t.equal(macs, 3, 'and checked again, not taken from a cache the key change emptied');
});
