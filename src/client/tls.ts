import { readFileSync } from 'node:fs';
import { RaftkvError } from './errors.js';

/** PEM text or bytes. */
export type Pem = string | Buffer;

/**
 * TLS settings of a client, for `https://` endpoints.
 *
 * - `ca`: the CA (or CAs) the servers' certificates must verify against;
 *   left out, Node's built-in public CAs are used.
 * - `cert` and `key`: this client's certificate and key, for servers that ask
 *   for one (mutual TLS, `--client-ca-file`); given together or not at all.
 *   With authentication enabled, the certificate's Common Name is the user.
 * - `servername`: the name the server certificate must carry, when it differs
 *   from the endpoint's host (e.g. connecting by IP to a certificate for a
 *   DNS name).
 *
 * Certificate checks are never switched off.
 */
export interface ClientTlsOptions {
  ca?: Pem | Pem[];
  cert?: Pem;
  key?: Pem;
  servername?: string;
}

/** File paths of the same three (and servername), for tlsFromFiles. */
export interface TlsFiles {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  servername?: string | undefined;
}

/**
 * Reads TLS files into ClientTlsOptions. Throws RaftkvError `invalid_request`
 * naming the file that cannot be read or does not hold PEM, and when only
 * one of cert and key is given.
 *
 *   new Client({ endpoints, tls: tlsFromFiles({ caFile: 'ca.crt', certFile: 'me.crt', keyFile: 'me.key' }) })
 */
export function tlsFromFiles(files: TlsFiles): ClientTlsOptions {
  const read = (path: string, what: string): Buffer => {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw new RaftkvError(
        'invalid_request',
        `cannot read the ${what} file ${path}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (!bytes.toString('latin1').includes('-----BEGIN '))
      throw new RaftkvError('invalid_request', `${path} is not a PEM file (the ${what} expected)`);
    return bytes;
  };
  const out: ClientTlsOptions = {};
  if (files.caFile !== undefined) out.ca = read(files.caFile, 'CA certificate');
  if (files.certFile !== undefined) out.cert = read(files.certFile, 'client certificate');
  if (files.keyFile !== undefined) out.key = read(files.keyFile, 'client key');
  if (files.servername !== undefined) out.servername = files.servername;
  checkTlsOptions(out);
  return out;
}

/** A client certificate needs its key and the other way round. */
export function checkTlsOptions(tls: ClientTlsOptions): void {
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new RaftkvError(
      'invalid_request',
      tls.cert === undefined
        ? 'a client key was given without its certificate (tls.cert, kvctl --cert)'
        : 'a client certificate was given without its key (tls.key, kvctl --key)',
    );
}

/** OpenSSL/Node error codes of a server certificate that does not verify against the CA. */
const SERVER_CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'INVALID_CA',
  'INVALID_PURPOSE',
]);

/**
 * A RaftkvError `tls_failed` with an explanation, when `err` is a TLS
 * handshake failure about certificates; undefined for any other error.
 * `definite`: the TLS layer said so (such a failure repeats on every attempt,
 * so the client does not retry it on the same endpoint); otherwise it is the
 * likely reason for a connection the server closed at once, and the attempt
 * is retried as any other connection failure.
 */
export function describeTlsFailure(
  err: unknown,
  endpoint: string,
  tls?: ClientTlsOptions,
): { error: RaftkvError; definite: boolean } | undefined {
  const e = err as
    | { code?: unknown; message?: unknown; cause?: unknown; socket?: { bytesRead?: unknown } }
    | undefined;
  if (!e || typeof e !== 'object') return undefined;
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  // TLS 1.3 servers check the client certificate after the handshake and then close; undici
  // often reports the close ("other side closed"), not the alert. A fresh connection closed
  // before a single byte came back is almost always that.
  if (code === 'UND_ERR_SOCKET' && endpoint.startsWith('https:') && e.socket?.bytesRead === 0) {
    const error = new RaftkvError(
      'tls_failed',
      `TLS: ${endpoint} closed the connection right after the handshake without answering: ` +
        (tls?.cert === undefined
          ? 'it probably requires a client certificate: give tls.cert and tls.key (kvctl --cert, --key)'
          : 'it probably refused the client certificate: is it signed by the CA the server trusts (its --client-ca-file)?'),
      { endpoint, cause: err },
    );
    return { error, definite: false };
  }
  if (SERVER_CERT_CODES.has(code)) {
    const hint =
      code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? 'the certificate is not for this host name (connect by a name it lists, or set tls.servername)'
        : code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID'
          ? 'the certificate is outside its validity period'
          : 'it is not signed by the CA given (tls.ca, kvctl --cacert)';
    const error = new RaftkvError(
      'tls_failed',
      `TLS: the server certificate of ${endpoint} was refused (${code}: ${message}): ${hint}`,
      { endpoint, cause: err },
    );
    return { error, definite: true };
  }
  // The server refused our certificate, or wanted one we did not send (TLS alerts).
  if (/certificate required|alert number 116/i.test(message)) {
    const error = new RaftkvError(
      'tls_failed',
      `TLS: ${endpoint} requires a client certificate: give tls.cert and tls.key (kvctl --cert, --key) (${message})`,
      { endpoint, cause: err },
    );
    return { error, definite: true };
  }
  if (/(unknown ca|bad certificate|certificate unknown|alert number 4[28])/i.test(message)) {
    const error = new RaftkvError(
      'tls_failed',
      `TLS: ${endpoint} refused the client certificate (${message}): is it signed by the CA the server trusts (its --client-ca-file)?`,
      { endpoint, cause: err },
    );
    return { error, definite: true };
  }
  if (e.cause !== undefined && e.cause !== err) return describeTlsFailure(e.cause, endpoint, tls);
  return undefined;
}
