import { RaftkvError } from './errors.js';

/**
 * How a client proves who it is (API.md "Security"):
 * - `{ name, password }`: the client gets a token with `POST /v1/auth/token`
 *   when it first needs one, renews it once 80 % of its ttl has passed (on the
 *   next request: no timer), and after a 401 caused by a token the server no
 *   longer accepts (expired, or invalidated because the user's password or
 *   roles changed) fetches a fresh one and retries the request once.
 * - `{ name, password, basic: true }`: HTTP Basic on every request, no token.
 * - `{ token }`: a token obtained elsewhere, sent as is; never renewed.
 * A client certificate (tls.cert) is the third way; it needs no `auth`.
 */
export type ClientAuth = { name: string; password: string; basic?: boolean } | { token: string };

export interface TokenResponse {
  token: string;
  /** Seconds the token stays valid after it was issued. */
  ttl: number;
}

/** Fetches a token for name and password (POST /v1/auth/token). */
export type TokenFetcher = (name: string, password: string) => Promise<TokenResponse>;

/** Share of the ttl after which a token is replaced before its next use. */
const RENEW_AT_FRACTION = 0.8;

interface HeldToken {
  header: string;
  /** Renew before the first request at or after this (ms since the epoch). */
  renewAtMs: number;
  /** The server stops accepting it around here; counted from when the request was sent. */
  expiresAtMs: number;
}

/**
 * The Authorization header of a client's requests.
 *
 * Invariants: at most one token request is in flight (`pending`); every
 * caller that needs a token while it is in flight waits for that same one
 * (single flight). `held` is the newest token obtained, or undefined before
 * the first and after invalidate().
 */
export class Credentials {
  private held: HeldToken | undefined;
  private pending: Promise<HeldToken> | undefined;
  private readonly staticHeader: string | undefined;
  /** Token requests sent so far (for tests and metrics). */
  tokenRequests = 0;

  constructor(
    readonly auth: ClientAuth,
    private readonly fetchToken: TokenFetcher,
    private readonly now: () => number = Date.now,
  ) {
    if ('token' in auth) {
      if (typeof auth.token !== 'string' || auth.token === '')
        throw new RaftkvError('invalid_request', 'auth.token must be a non-empty string');
      this.staticHeader = `Bearer ${auth.token}`;
    } else {
      if (typeof auth.name !== 'string' || auth.name === '')
        throw new RaftkvError('invalid_request', 'auth.name must be a non-empty string');
      if (typeof auth.password !== 'string')
        throw new RaftkvError('invalid_request', 'auth.password must be a string');
      if (auth.basic)
        this.staticHeader = `Basic ${Buffer.from(`${auth.name}:${auth.password}`, 'utf8').toString('base64')}`;
    }
  }

  /** The user these credentials name, when they name one. */
  get user(): string | undefined {
    return 'name' in this.auth ? this.auth.name : undefined;
  }

  /** Whether a rejected header can be replaced by a fresh token (name and password, no Basic). */
  get renewable(): boolean {
    return this.staticHeader === undefined;
  }

  /**
   * The Authorization header for the next request. With name and password it
   * first fetches a token if there is none, or renews one that is past 80 %
   * of its ttl; if renewing fails while the old token has not expired yet,
   * the old one is used. Throws what the token request threw otherwise (for
   * a wrong name or password: UnauthenticatedError).
   */
  async header(): Promise<string> {
    if (this.staticHeader !== undefined) return this.staticHeader;
    const held = this.held;
    const now = this.now();
    if (held && now < held.renewAtMs) return held.header;
    try {
      return (await this.refresh()).header;
    } catch (err) {
      if (held && this.now() < held.expiresAtMs && this.held === held) return held.header;
      throw err;
    }
  }

  /**
   * `header` was refused with 401: forget it, unless a newer token replaced
   * it meanwhile, so the next header() fetches a fresh one. Concurrent
   * requests refused with the same token thus share one new token request.
   */
  invalidate(header: string): void {
    if (this.held?.header === header) this.held = undefined;
  }

  /** One token request shared by every caller that asks while it is in flight. */
  private refresh(): Promise<HeldToken> {
    if (this.pending) return this.pending;
    const auth = this.auth as { name: string; password: string };
    const sentAtMs = this.now();
    this.tokenRequests++;
    const pending = this.fetchToken(auth.name, auth.password).then((res) => {
      if (typeof res?.token !== 'string' || res.token === '' || !(res.ttl > 0))
        throw new RaftkvError('internal', 'POST /v1/auth/token: the answer has no token or ttl', {
          body: res,
        });
      const ttlMs = res.ttl * 1000;
      const held: HeldToken = {
        header: `Bearer ${res.token}`,
        renewAtMs: sentAtMs + ttlMs * RENEW_AT_FRACTION,
        expiresAtMs: sentAtMs + ttlMs,
      };
      this.held = held;
      return held;
    });
    this.pending = pending;
    const clear = () => {
      if (this.pending === pending) this.pending = undefined;
    };
    pending.then(clear, clear);
    return pending;
  }
}
