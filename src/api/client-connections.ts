import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * How long a connection must have been idle before a closing server cuts it: a
 * request the client sent just before it learnt of the close (or that the event
 * loop has not read yet) is still read and answered 503, rather than lost in a cut
 * connection whose client cannot tell whether it was applied.
 */
export const IN_TRANSIT_GRACE_MS = 50;

/**
 * The client port's connections, so that a closing server ends each one as soon
 * as it can, and the process exits promptly:
 *
 * 1. Idle connections — keep-alive ones between requests, and ones opened but never
 *    used (clients and proxies pre-connect) — are closed at once (once idle for
 *    IN_TRANSIT_GRACE_MS). Node's own sweep (server.closeIdleConnections, which
 *    server.close() calls) is replaced by this one: it cut keep-alive connections
 *    with a request on its way, and left never-used ones open, which kept a stopping
 *    member alive until its forced exit.
 * 2. A connection with a request in progress is closed after the response, which says
 *    `Connection: close` (when its headers are not out yet) so the client does not
 *    send another request on it; after a response whose headers were already out (a
 *    watch stream), the connection is idle and closed as in 1.
 * 3. Requests that still arrive on an open connection get 503 `unavailable` (the
 *    onRequest hook in app.ts asks `closing`).
 *
 * What HTTP/1.1 still leaves open — a request sent on an idle connection at the
 * moment it is cut — was never read here, and a client retries it (the raftkv client
 * library does, on another member: its writes carry an Idempotency-Key).
 */
export class ClientConnections {
  private closingNow = false;
  /** The sockets requests arrive on (the TLS sockets on an https server) → idle since (ms). */
  private readonly connections = new Map<Socket, number>();
  /** Every TCP connection (under TLS, also those still in their handshake): the last resort. */
  private readonly tcp = new Set<Socket>();
  /** Responses not finished yet. */
  private readonly inProgress = new Set<ServerResponse>();
  /** Connections with a response in progress → how many (more than one when pipelined). */
  private readonly busy = new Map<Socket, number>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepScheduled = false;

  constructor(server: Server, secure: boolean) {
    server.on('connection', (socket: Socket) => {
      this.tcp.add(socket);
      socket.once('close', () => this.tcp.delete(socket));
      if (!secure) this.add(socket);
    });
    if (secure) server.on('secureConnection', (socket: Socket) => this.add(socket));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket;
      this.inProgress.add(res);
      this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
      res.once('close', () => {
        this.inProgress.delete(res);
        const left = (this.busy.get(socket) ?? 1) - 1;
        if (left > 0) {
          this.busy.set(socket, left);
          return;
        }
        this.busy.delete(socket);
        if (this.connections.has(socket)) this.connections.set(socket, performance.now());
        // Said `Connection: close`: Node ends it. Otherwise (its headers were out before
        // the close began) the client may send another request: the sweep cuts it once idle.
        if (this.closingNow) this.scheduleSweep(IN_TRANSIT_GRACE_MS);
      });
    });
    server.closeIdleConnections = () => this.closeIdle();
  }

  /** True once the server began closing: new requests are refused with 503. */
  get closing(): boolean {
    return this.closingNow;
  }

  /** Steps 2 and 3: from now on, no connection outlives its current request. */
  beginClosing(): void {
    if (this.closingNow) return;
    this.closingNow = true;
    for (const res of this.inProgress) {
      if (!res.headersSent) res.setHeader('connection', 'close');
    }
  }

  /** Step 1 (after beginClosing): closes idle connections, each once idle for IN_TRANSIT_GRACE_MS. */
  closeIdle(): void {
    this.beginClosing();
    this.scheduleSweep(0);
  }

  /**
   * Sweeps after `delayMs`, in the check phase of the event loop: timers run before
   * the loop reads sockets, and a request already received is read first (it is then
   * in progress, not idle).
   */
  private scheduleSweep(delayMs: number): void {
    if (this.sweepScheduled) return;
    this.sweepScheduled = true;
    const run = () =>
      setImmediate(() => {
        this.sweepScheduled = false;
        this.sweep();
      });
    if (delayMs <= 0) run();
    else {
      this.sweepTimer = setTimeout(run, delayMs);
      this.sweepTimer.unref();
    }
  }

  private sweep(): void {
    const now = performance.now();
    let nextMs = Number.POSITIVE_INFINITY;
    for (const [socket, idleSince] of this.connections) {
      if (this.busy.has(socket)) continue;
      const idleMs = now - idleSince;
      if (idleMs >= IN_TRANSIT_GRACE_MS) socket.destroy();
      else nextMs = Math.min(nextMs, IN_TRANSIT_GRACE_MS - idleMs);
    }
    if (nextMs !== Number.POSITIVE_INFINITY) this.scheduleSweep(Math.ceil(nextMs));
  }

  /** Requests being answered now. */
  get requestsInProgress(): number {
    return this.inProgress.size;
  }

  /** Connections still open (idle or not). */
  get openCount(): number {
    return this.tcp.size;
  }

  /** The last resort, when responses did not finish in time: every connection is cut. */
  destroyAll(): void {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const socket of [...this.connections.keys(), ...this.tcp]) socket.destroy();
  }

  private add(socket: Socket): void {
    // Accepted while closing (before the listener stopped): cut once idle, or its first request gets 503.
    this.connections.set(socket, performance.now());
    socket.once('close', () => this.connections.delete(socket));
    if (this.closingNow) this.scheduleSweep(IN_TRANSIT_GRACE_MS);
  }
}
