/**
 * Dialing with TLS material that may be reloaded: each new connection takes
 * the material current at that moment; connections already open are left as
 * they are. Also the one place that reads a verified client certificate's
 * name off a socket.
 */
import tls from 'node:tls';
import { buildConnector } from 'undici';
import type { TlsMaterial } from './material.js';

/**
 * An undici `connect` function (Pool/Agent option) that presents `material`'s
 * certificate and verifies the server against its CA, with Node's default
 * hostname check. The connector is rebuilt when the material is reloaded, so
 * its TLS session cache never outlives the material it was made with.
 */
export function undiciConnect(
  material: TlsMaterial,
  options: { timeoutMs?: number } = {},
): buildConnector.connector {
  let built: { generation: number; connector: buildConnector.connector } | undefined;
  return (opts, callback) => {
    const snapshot = material.snapshot;
    if (built?.generation !== snapshot.generation) {
      built = {
        generation: snapshot.generation,
        connector: buildConnector({
          secureContext: snapshot.secureContext,
          rejectUnauthorized: true,
          ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
        }),
      };
    }
    return built.connector(opts, callback);
  };
}

/** Options for https.request / tls.connect: the current material, servers verified. */
export function tlsDialOptions(material: TlsMaterial): tls.ConnectionOptions {
  return { secureContext: material.secureContext, rejectUnauthorized: true };
}

/**
 * The Common Name of the client certificate on `socket`, only when the
 * handshake verified it against the server's CA (`socket.authorized`); else
 * undefined (plain HTTP, no certificate, or one that did not verify).
 * For the auth layer: with --client-ca-file, this is the user's name.
 */
export function peerCertificateCommonName(socket: unknown): string | undefined {
  if (!(socket instanceof tls.TLSSocket) || socket.authorized !== true) return undefined;
  const cn = socket.getPeerCertificate().subject?.CN as string | string[] | undefined;
  // Several CN attributes make the name ambiguous: no name rather than a guess.
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

/**
 * The code of the TLS failure behind `err` (looked for through up to four
 * `cause`s): a certificate that did not verify, a hostname not in its SANs,
 * an alert from the other side refusing ours. Undefined for anything else
 * (refused, reset, timed out).
 */
export function tlsFailureCode(err: unknown): string | undefined {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === 'string' && /^ERR_SSL_|^ERR_TLS_|CERT|^UNABLE_TO_/.test(e.code))
      return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}
