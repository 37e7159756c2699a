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
