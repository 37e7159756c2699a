/**
 * `raftkv certs`: what a cluster needs for a first deployment, as `cockroach
 * cert` and `consul tls` make it. ECDSA P-256 keys and certificates made with
 * @peculiar/x509 over Node's webcrypto.
 *
 * In a directory (created 0700 when missing):
 * - `ca.crt`, `ca.key`: a CA (10 years by default). Its key signs the others;
 *   keep it offline once the certificates are made.
 * - `<name>.crt`, `<name>.key`: a node certificate, for both the server and
 *   the client side of TLS (peers dial each other with it), its SANs from
 *   `--host` (IP addresses as IP SANs, names as DNS SANs).
 * - `client.<user>.crt`, `client.<user>.key`: a client certificate whose
 *   Common Name is the user's name.
 *
 * Keys are written 0600, certificates 0644, each through a temporary file
 * renamed into place, so a server watching them never reads half a file.
 * An existing file is never overwritten without `overwrite`.
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;

import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import * as x509 from '@peculiar/x509';

// Node's webcrypto is the standard Crypto; the library types it with the DOM lib, which this project leaves out.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[1]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start an hour back, so a peer whose clock is a little behind accepts them. */
const BACKDATE_MS = 60 * 60 * 1000;

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';

/** A request that cannot be done as asked: `message` says what and how to fix it. */
export class CertsError extends Error {
  override readonly name = 'CertsError';
}

export interface WrittenFile {
  path: string;
  mode: number;
}

export interface CertsResult {
  written: WrittenFile[];
  /** Serial number of the new certificate, hex. */
  serialNumber: string;
}

interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // positive, as RFC 5280 asks
  bytes[0]! |= 0x01; // and never with a leading zero byte
  return bytes.toString('hex');
}

/** A DN attribute value with the characters that would break the string form escaped. */
function dnValue(value: string): string {
  return value.replace(/([,+"\\<>;=#])/g, '\\$1');
}

function checkDays(days: number): void {
  if (!Number.isSafeInteger(days) || days < 1 || days > 36_500)
    throw new CertsError(`--days must be a whole number of days from 1 to 36500, got ${days}`);
}

async function generateKeys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as KeyPair;
}

async function keyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

async function refuseExisting(files: string[], overwrite: boolean, hint: string): Promise<void> {
  if (overwrite) return;
  for (const file of files) {
    if (await exists(file)) {
      throw new CertsError(`${file} already exists: ${hint}, or pass --overwrite to replace it`);
    }
  }
}

/** Creates `dir` 0700 if missing; an existing one keeps its mode. */
async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/** Writes `text` to `file` with `mode`, through a temporary file renamed into place. */
async function writeAtomic(file: string, text: string, mode: number): Promise<WrittenFile> {
  const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  // Created with the final mode (0600 for keys), so the key is never readable by others,
  // not even between the write and the chmod.
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(temp, mode); // the umask may have taken bits off; set exactly what was asked
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return { path: file, mode };
}

async function loadCa(dir: string): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const certFile = path.join(dir, CA_CERT_FILE);
  const keyFile = path.join(dir, CA_KEY_FILE);
  let certPem: string;
  let keyPemText: string;
  try {
    [certPem, keyPemText] = await Promise.all([
      readFile(certFile, 'utf8'),
      readFile(keyFile, 'utf8'),
    ]);
  } catch (err) {
    throw new CertsError(
      `no CA in ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ` +
        `create one first with: raftkv certs create-ca --dir ${dir}`,
    );
  }
  try {
    const cert = new x509.X509Certificate(certPem);
    const key = await webcrypto.subtle.importKey(
      'pkcs8',
      x509.PemConverter.decodeFirst(keyPemText),
      ALGORITHM,
      false,
      ['sign'],
    );
    return { cert, key };
  } catch (err) {
    throw new CertsError(
      `${certFile} / ${keyFile} are not a CA made by raftkv certs (ECDSA P-256): ${(err as Error).message}`,
    );
  }
}

export interface CreateCaOptions {
  dir: string;
  /** Validity in days. Default 3650. */
  days?: number;
  /** Common Name. Default "raftkv CA". */
  commonName?: string;
  overwrite?: boolean;
}

/** `raftkv certs create-ca`: a self-signed CA in `dir`. */
export async function createCa(options: CreateCaOptions): Promise<CertsResult> {
  const days = options.days ?? 3650;
  checkDays(days);
  const certFile = path.join(options.dir, CA_CERT_FILE);
  const keyFile = path.join(options.dir, CA_KEY_FILE);
  await refuseExisting(
    [keyFile, certFile],
    options.overwrite ?? false,
    'every certificate signed by this CA would stop verifying; use another --dir',
  );
  await ensureDir(options.dir);
  const keys = await generateKeys();
  const now = Date.now();
  const serialNumber = newSerial();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber,
    name: `CN=${dnValue(options.commonName ?? 'raftkv CA')}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + days * DAY_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const written = [
    await writeAtomic(keyFile, await keyPem(keys.privateKey), 0o600),
    await writeAtomic(certFile, cert.toString('pem'), 0o644),
  ];
  return { written, serialNumber };
}

interface LeafOptions {
  dir: string;
  commonName: string;
  baseName: string;
  days: number;
  overwrite: boolean;
  usages: string[];
  extensions: x509.Extension[];
}

async function createLeaf(options: LeafOptions): Promise<CertsResult> {
  checkDays(options.days);
  const certFile = path.join(options.dir, `${options.baseName}.crt`);
  const keyFile = path.join(options.dir, `${options.baseName}.key`);
  await refuseExisting([certFile, keyFile], options.overwrite, 'to rotate it');
  const ca = await loadCa(options.dir);
  const keys = await generateKeys();
  const now = Date.now();
  const serialNumber = newSerial();
  const notAfterMs = Math.min(now + options.days * DAY_MS, ca.cert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: `CN=${dnValue(options.commonName)}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(notAfterMs),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(options.usages, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      ...options.extensions,
    ],
  });
  // The key first: a server watching the pair reloads once both are in place.
  const written = [
    await writeAtomic(keyFile, await keyPem(keys.privateKey), 0o600),
    await writeAtomic(certFile, cert.toString('pem'), 0o644),
  ];
  return { written, serialNumber };
}

export interface CreateNodeOptions {
  dir: string;
  /** Host names and IP addresses the node is reached at (at least one). */
  hosts: string[];
  /** Names the files `<name>.crt`/`<name>.key` and is the Common Name. Default "node". */
  name?: string;
  /** Validity in days (never past the CA's). Default 365. */
  days?: number;
  overwrite?: boolean;
}

/** `raftkv certs create-node`: a certificate for a node's client and peer ports, both TLS sides. */
export async function createNode(options: CreateNodeOptions): Promise<CertsResult> {
  const name = options.name ?? 'node';
  checkFileName(name, '--name');
  const hosts = [...new Set(options.hosts.map((h) => h.trim().replace(/^\[(.*)\]$/, '$1')))];
  if (hosts.length === 0 || hosts.some((h) => h === '')) {
    throw new CertsError(
      'create-node needs --host for every name and address the node is reached at ' +
        '(e.g. --host 10.0.0.1 --host n1.example --host localhost --host 127.0.0.1)',
    );
  }
  const san = new x509.SubjectAlternativeNameExtension(
    hosts.map(
      (h): x509.JsonGeneralName => (isIP(h) ? { type: 'ip', value: h } : { type: 'dns', value: h }),
    ),
    false,
  );
  return createLeaf({
    dir: options.dir,
    commonName: name,
    baseName: name,
    days: options.days ?? 365,
    overwrite: options.overwrite ?? false,
    usages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    extensions: [san],
  });
}

export interface CreateClientOptions {
  dir: string;
  /** The user name: the certificate's Common Name. */
  user: string;
  days?: number;
  overwrite?: boolean;
}

/** `raftkv certs create-client`: a client certificate whose Common Name is `user`. */
export async function createClient(options: CreateClientOptions): Promise<CertsResult> {
  checkFileName(options.user, '--user');
  return createLeaf({
    dir: options.dir,
    commonName: options.user,
    baseName: `client.${options.user}`,
    days: options.days ?? 365,
    overwrite: options.overwrite ?? false,
    usages: [x509.ExtendedKeyUsage.clientAuth],
    extensions: [],
  });
}

/** Names that become file names: no path separators, nothing hidden. */
function checkFileName(value: string, flag: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$/.test(value)) {
    throw new CertsError(
      `${flag} "${value}" must be 1-128 letters, digits, '_', '.', '@' or '-', not starting with '.' or '-'`,
    );
  }
}
