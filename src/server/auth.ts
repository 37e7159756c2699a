import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { AccessNeed, AuthUser } from '../kv/auth.js';

const scryptAsync = promisify(scrypt) as (
  password: string | Buffer,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/**
 * The auth state a node reads: the replicated users, roles and signing key
 * (the KV state machine's `auth`). Reads are local: any member verifies a
 * token or a password without asking another.
 */
export interface AuthStateView {
  readonly enabled: boolean;
  readonly signingKey: string | null;
  user(name: string): AuthUser | undefined;
  isRoot(name: string): boolean;
  permits(name: string, need: AccessNeed): boolean;
}

/** Who made a request. `user` is undefined while auth is disabled (everyone may do everything). */
export type Principal = { readonly user: string | undefined; readonly root: boolean };

export const ANONYMOUS: Principal = Object.freeze({ user: undefined, root: true });

/** Why a request is refused before it runs: API.md's 401, 403 and 429. */
export class AuthError extends Error {
  constructor(
    readonly code: 'unauthenticated' | 'permission_denied' | 'too_many_requests',
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface AuthOptions {
  /** Lifetime of a token from POST /v1/auth/token. */
  tokenTtlSeconds: number;
  /** How long a verified Basic credential is remembered, so each request does not cost a scrypt. */
  basicCacheMs?: number;
  /** Failed token requests for one name before 429. */
  failuresBeforeThrottle?: number;
}

// scrypt at N=2^14, r=8: about 16 MiB and tens of ms per hash, OWASP's minimum for scrypt.
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;
const SCRYPT_MAXMEM = 64 * 1024 * 1024;
const HASH_PREFIX = 'scrypt';

/** A salted scrypt hash: `scrypt$N$r$p$salt$hash` (base64). Never returned by the API. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, SCRYPT.keylen, {
    N: SCRYPT.N,
    r: SCRYPT.r,
    p: SCRYPT.p,
    maxmem: SCRYPT_MAXMEM,
  });
  return [
    HASH_PREFIX,
    SCRYPT.N,
    SCRYPT.r,
    SCRYPT.p,
    salt.toString('base64'),
    hash.toString('base64'),
  ].join('$');
}

/** Compares in constant time; a malformed stored hash never matches. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== HASH_PREFIX) return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0) || expected.length === 0)
    return false;
  const actual = await scryptAsync(password, salt, expected.length, {
    N,
    r,
    p,
    maxmem: SCRYPT_MAXMEM,
  });
  return timingSafeEqual(actual, expected);
}

/** A fresh token-signing key, proposed with `authEnable` so every member holds the same one. */
export function newSigningKey(): string {
  return randomBytes(32).toString('base64');
}

interface TokenClaims {
  /** user name */
  readonly u: string;
  /** the user's auth revision when the token was made */
  readonly r: number;
  /** expiry, ms since the epoch */
  readonly x: number;
}

/**
 * Authentication for one node: tokens (HMAC-SHA256 under the replicated
 * signing key, so any member verifies any member's token), Basic credentials
 * (scrypt, with a short cache), client certificates, and throttling of failed
 * logins. Permissions themselves are the replicated state's `permits`.
 */
export class Authenticator {
  private readonly tokenTtlMs: number;
  private readonly basicCacheMs: number;
  private readonly failuresBeforeThrottle: number;
  /** HMAC(name:password) under a per-process key → when the check was made and for which user revision. */
  private readonly basicCache = new Map<string, { user: string; revision: number; atMs: number }>();
  private readonly cacheKey = randomBytes(32);
  private readonly failures = new Map<string, { count: number; blockedUntilMs: number }>();
  /**
   * Tokens whose signature was checked under `verifiedUnderKey`, with their
   * claims: a map lookup per request instead of an HMAC, a base64 decode and a
   * JSON parse (4 % of a member's CPU under load with auth on). Expiry and the
   * user's revision are still checked on every use; a new signing key empties it.
   */
  private readonly verifiedTokens = new Map<string, TokenClaims>();
  private verifiedUnderKey: string | null = null;
  private static readonly CACHE_ENTRIES_MAX = 10_000;
  private static readonly FAILURE_ENTRIES_MAX = 10_000;

  constructor(
    private readonly state: () => AuthStateView,
    options: AuthOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.tokenTtlMs = options.tokenTtlSeconds * 1000;
    this.basicCacheMs = options.basicCacheMs ?? 30_000;
    this.failuresBeforeThrottle = options.failuresBeforeThrottle ?? 5;
  }

  /**
   * Who made a request, from its Authorization header or its verified client
   * certificate's Common Name. While auth is disabled everyone is anonymous
   * root. Throws AuthError('unauthenticated') for missing or bad credentials.
   */
  async authenticate(
    authorization: string | undefined,
    certificateName: string | undefined,
  ): Promise<Principal> {
    const state = this.state();
    if (!state.enabled) return ANONYMOUS;
    let user: string | undefined;
    if (authorization !== undefined) {
      const space = authorization.indexOf(' ');
      const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
      const value = space < 0 ? '' : authorization.slice(space + 1).trim();
      if (scheme === 'bearer') user = this.verifyToken(value);
      else if (scheme === 'basic') user = await this.verifyBasic(value);
      else throw new AuthError('unauthenticated', `unsupported authorization scheme "${scheme}"`);
    } else if (certificateName !== undefined) {
      if (state.user(certificateName) === undefined)
        throw new AuthError('unauthenticated', `no user named by the client certificate`);
      user = certificateName;
    } else {
      throw new AuthError(
        'unauthenticated',
        'authentication is enabled: send Authorization: Bearer TOKEN or Basic credentials',
      );
    }
    return { user, root: state.isRoot(user) };
  }

  /** POST /v1/auth/token. One answer for a wrong name or a wrong password; 429 after repeated failures. */
  async issueToken(name: string, password: string): Promise<{ token: string; ttl: number }> {
    const state = this.state();
    if (!state.enabled || state.signingKey === null)
      throw new AuthError('unauthenticated', 'authentication is not enabled');
    this.checkThrottle(name);
    const user = state.user(name);
    const ok = await this.passwordMatches(user, password);
    if (!ok || user === undefined) {
      this.recordFailure(name);
      throw new AuthError('unauthenticated', 'wrong user name or password');
    }
    this.failures.delete(name);
    const claims: TokenClaims = { u: user.name, r: user.revision, x: this.now() + this.tokenTtlMs };
    return { token: this.sign(claims, state.signingKey), ttl: this.tokenTtlMs / 1000 };
  }

  /** The user a token names, if it is well signed, unexpired, and its user unchanged since. */
  verifyToken(token: string): string {
    const state = this.state();
    if (state.signingKey === null) throw new AuthError('unauthenticated', 'invalid token');
    if (state.signingKey !== this.verifiedUnderKey) {
      this.verifiedTokens.clear();
      this.verifiedUnderKey = state.signingKey;
    }
    let claims = this.verifiedTokens.get(token);
    if (claims === undefined) {
      claims = this.checkSignature(token, state.signingKey);
      // Only well-signed tokens get here: nobody without the key can fill the map.
      if (this.verifiedTokens.size >= Authenticator.CACHE_ENTRIES_MAX) this.verifiedTokens.clear();
      this.verifiedTokens.set(token, claims);
    }
    if (claims.x <= this.now()) throw new AuthError('unauthenticated', 'the token has expired');
    const user = state.user(claims.u);
    if (user === undefined || user.revision !== claims.r)
      throw new AuthError(
        'unauthenticated',
        'the token is no longer valid (its user was deleted or changed)',
      );
    return user.name;
  }

  /** The claims of a token signed under `key`; throws for a bad signature or body. */
  private checkSignature(token: string, key: string): TokenClaims {
    const dot = token.indexOf('.');
    if (dot <= 0) throw new AuthError('unauthenticated', 'invalid token');
    const body = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const expected = this.mac(body, key);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new AuthError('unauthenticated', 'invalid token');
    let claims: TokenClaims;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TokenClaims;
    } catch {
      throw new AuthError('unauthenticated', 'invalid token');
    }
    if (typeof claims.x !== 'number') throw new AuthError('unauthenticated', 'invalid token');
    return claims;
  }

  private async verifyBasic(value: string): Promise<string> {
    let decoded: string;
    try {
      decoded = Buffer.from(value, 'base64').toString('utf8');
    } catch {
      throw new AuthError('unauthenticated', 'malformed Basic credentials');
    }
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new AuthError('unauthenticated', 'malformed Basic credentials');
    const name = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const state = this.state();
    const user = state.user(name);
    const cacheKey = createHmac('sha256', this.cacheKey).update(decoded).digest('base64');
    const cached = this.basicCache.get(cacheKey);
    if (
      cached !== undefined &&
      user !== undefined &&
      cached.user === name &&
      cached.revision === user.revision &&
      this.now() - cached.atMs < this.basicCacheMs
    )
      return name;
    this.checkThrottle(name);
    if (!(await this.passwordMatches(user, password)) || user === undefined) {
      this.recordFailure(name);
      throw new AuthError('unauthenticated', 'wrong user name or password');
    }
    this.failures.delete(name);
    if (this.basicCache.size >= Authenticator.CACHE_ENTRIES_MAX) this.basicCache.clear();
    this.basicCache.set(cacheKey, { user: name, revision: user.revision, atMs: this.now() });
    return name;
  }

  /** Costs one scrypt whether or not the user exists, so timing does not tell names apart. */
  private async passwordMatches(user: AuthUser | undefined, password: string): Promise<boolean> {
    const stored = user?.passwordHash ?? DUMMY_HASH;
    const ok = await verifyPassword(stored, password);
    return ok && user !== undefined && user.passwordHash !== null;
  }

  private checkThrottle(name: string): void {
    const entry = this.failures.get(name);
    if (entry === undefined) return;
    const waitMs = entry.blockedUntilMs - this.now();
    if (waitMs > 0)
      throw new AuthError(
        'too_many_requests',
        `too many failed logins for this name; retry later`,
        Math.ceil(waitMs / 1000),
      );
  }

  /** After `failuresBeforeThrottle` failures, each further one blocks the name for longer (1 s doubling, at most 60 s). */
  private recordFailure(name: string): void {
    if (this.failures.size >= Authenticator.FAILURE_ENTRIES_MAX && !this.failures.has(name))
      this.failures.clear();
    const entry = this.failures.get(name) ?? { count: 0, blockedUntilMs: 0 };
    entry.count++;
    const over = entry.count - this.failuresBeforeThrottle;
    if (over >= 0) entry.blockedUntilMs = this.now() + Math.min(60_000, 1000 * 2 ** over);
    this.failures.set(name, entry);
  }

  private sign(claims: TokenClaims, key: string): string {
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${body}.${this.mac(body, key).toString('base64url')}`;
  }

  private mac(body: string, key: string): Buffer {
    return createHmac('sha256', Buffer.from(key, 'base64')).update(body).digest();
  }
}

/** A hash nobody's password matches, for names that do not exist (same cost as a real check). */
const DUMMY_HASH = `${HASH_PREFIX}$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`;

/** Whether `principal` may do what `need` says. */
export function permits(state: AuthStateView, principal: Principal, need: AccessNeed): boolean {
  if (principal.root || principal.user === undefined) return true;
  return state.permits(principal.user, need);
}
