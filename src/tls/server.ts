/**
 * Serving with TLS material that may be reloaded: options for an https
 * server, and a subscription that hands each reload to the running server.
 */
import type { ServerOptions } from 'node:https';
import type tls from 'node:tls';
import type { TlsMaterial } from './material.js';

/**
 * Options for https.createServer (fastify's `https`). With `requireClientCert`
 * (the peer port always; the client port with --client-ca-file) a connection
 * whose certificate does not verify against the material's CA is refused in
 * the handshake, before any HTTP.
 */
export function httpsServerOptions(
  material: TlsMaterial,
  options: { requireClientCert: boolean },
): ServerOptions {
  return {
    ...material.serverOptions(),
    requestCert: options.requireClientCert,
    rejectUnauthorized: options.requireClientCert,
  };
}

/**
 * Hands every reload of `material` to `server` (tls.Server#setSecureContext):
 * handshakes from then on use the new certificate and CA, open connections
 * are untouched. Returns the unsubscriber.
 */
export function serveReloads(server: tls.Server, material: TlsMaterial): () => void {
  return material.onReload(() => server.setSecureContext(material.serverOptions()));
}

/**
 * Logs TLS handshakes that failed (a client certificate that does not verify,
 * none at all, plain HTTP on a TLS port, a client that hung up refusing ours),
 * at most once per `everyMs` per remote address and reason, so a misconfigured
 * peer is visible without flooding the log. The connection is closed either
 * way. Returns the unsubscriber.
 */
export function logRefusedHandshakes(
  server: tls.Server,
  log: (obj: object, msg: string) => void,
  label: string,
  everyMs = 60_000,
): () => void {
  const lastMs = new Map<string, number>();
  const onError = (err: Error & { code?: string }, socket: tls.TLSSocket): void => {
    // Often gone by now: a socket the handshake refused is already closed.
    const remote = socket.remoteAddress;
    // A client certificate that did not verify shows as its verification error (the
    // socket error itself is only the reset that followed).
    const code = String(socket.authorizationError ?? err.code ?? err.message);
    socket.destroy();
    const key = `${remote} ${code}`;
    const now = performance.now();
    const last = lastMs.get(key);
    if (last !== undefined && now - last < everyMs) return;
    if (lastMs.size >= 1024) lastMs.clear(); // bounded: a scan of many addresses logs again, that is all
    lastMs.set(key, now);
    log(
      { ...(remote ? { remote } : {}), code, reason: err.message },
      `${label} TLS handshake${remote ? ` from ${remote}` : ''} failed (${code}); logged at most once a minute per address and reason`,
    );
  };
  server.on('tlsClientError', onError);
  return () => server.off('tlsClientError', onError);
}
