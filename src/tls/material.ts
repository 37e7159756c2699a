/**
 * TLS material: a certificate, its key and (optionally) a CA, read from files
 * and kept current. The client API server, the peer server and every peer
 * client (transport pools, message streams, the forwarder, --join) take their
 * TLS settings from a TlsMaterial, so a rotation reaches all of them at once.
 *
 * Rules:
 * 1. `load()` reads and checks the files (PEM parses, the key matches the
 *    certificate, the CA parses); any failure is a TlsError that names the
 *    file, and nothing is kept.
 * 2. `reload()` (SIGHUP, or a watched file that changed) reads them again. On
 *    success the new material is current: new connections, both accepted and
 *    dialed, use it, and the `onReload` listeners run (the servers call
 *    setSecureContext). Connections already open keep the material they were
 *    made with. On failure (a missing file, bad PEM, a key of another
 *    certificate) the old material stays current, an error is logged, and
 *    nothing throws: a bad rotation never stops a node.
 * 3. Reloads never overlap: one asked for while another runs runs once more
 *    after it, with whatever the files hold by then.
 * 4. Watching polls the files' stat every `watchIntervalMs` (fs.watchFile:
 *    it sees replacement by rename, which `fs.watch` loses), and a change
 *    reloads after `debounceMs`, so a cert and key written one after the
 *    other are read together.
 */
import { X509Certificate } from 'node:crypto';
import { type Stats, unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';

/** Where the material is read from. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Peers (or clients) must present a certificate signed by this CA; also used to verify servers. */
  caFile?: string;
}

/** The subset of a pino logger this module uses. */
export interface TlsLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface TlsMaterialOptions {
  /** What the material is for, in log lines and errors ("client", "peer"). */
  label: string;
  logger?: TlsLogger;
  /** Re-read the files when they change. Default true. */
  watch?: boolean;
  /** stat polling interval. Default 1000 ms. */
  watchIntervalMs?: number;
  /** Wait after a change before reloading. Default 300 ms. */
  debounceMs?: number;
}

/** A file that cannot serve as TLS material; `message` names the file and what is wrong. */
export class TlsError extends Error {
  override readonly name = 'TlsError';
}

/** One loaded generation of the files. */
export interface TlsSnapshot {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  /** For dialing: tls.connect({ secureContext }) presents cert/key and verifies against ca. */
  readonly secureContext: tls.SecureContext;
  /** SHA-256 fingerprint of the certificate. */
  readonly fingerprint: string;
  readonly serialNumber: string;
  readonly validTo: string;
  /** 1 for the first load, +1 for each successful reload. */
  readonly generation: number;
}

const silentLogger: TlsLogger = { info: () => {}, error: () => {} };

async function readPem(file: string, what: string, label: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TlsError(
      `${label} TLS ${what} file ${file} cannot be read (${code ?? (err as Error).message})`,
    );
  }
}

/** Reads and checks the files (rule 1). */
async function readSnapshot(
  files: TlsFiles,
  label: string,
  generation: number,
): Promise<TlsSnapshot> {
  // Read together, but report in a fixed order (certificate, key, CA): with Promise.all the
  // error named whichever read happened to fail first, so the message changed run to run.
  const reads = await Promise.allSettled([
    readPem(files.certFile, 'certificate', label),
    readPem(files.keyFile, 'key', label),
    files.caFile ? readPem(files.caFile, 'CA', label) : Promise.resolve(undefined),
  ]);
  for (const read of reads) if (read.status === 'rejected') throw read.reason;
  const [cert, key, ca] = reads.map((read) =>
    read.status === 'fulfilled' ? read.value : undefined,
  ) as [Buffer, Buffer, Buffer | undefined];
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(cert);
  } catch (err) {
    throw new TlsError(
      `${label} TLS certificate file ${files.certFile} is not a PEM certificate (${(err as Error).message})`,
    );
  }
  if (ca) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new TlsError(
        `${label} TLS CA file ${files.caFile} is not a PEM certificate (${(err as Error).message})`,
      );
    }
  }
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
  } catch (err) {
    throw new TlsError(
      `${label} TLS key file ${files.keyFile} does not go with certificate ${files.certFile} ` +
        `(${(err as Error).message})`,
    );
  }
  return {
    cert,
    key,
    ca,
    secureContext,
    fingerprint: parsed.fingerprint256,
    serialNumber: parsed.serialNumber,
    validTo: parsed.validTo,
    generation,
  };
}

/** A certificate, key and CA kept current from their files; see the rules above. */
export class TlsMaterial {
  readonly files: TlsFiles;
  readonly label: string;
  private current: TlsSnapshot;
  private readonly logger: TlsLogger;
  private readonly listeners = new Set<(s: TlsSnapshot) => void>();
  /** Each watched path with its own listener: unwatchFile(path) alone would also stop other materials watching the same file. */
  private readonly watched: Array<[string, (now: Stats, before: Stats) => void]> = [];
  private readonly debounceMs: number;
  private debounceTimer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private again = false;
  private closed = false;

  private constructor(files: TlsFiles, first: TlsSnapshot, options: TlsMaterialOptions) {
    this.files = files;
    this.label = options.label;
    this.current = first;
    this.logger = options.logger ?? silentLogger;
    this.debounceMs = options.debounceMs ?? 300;
    if (options.watch ?? true) this.watch(options.watchIntervalMs ?? 1000);
  }

  /** Reads the files; throws TlsError when they cannot serve (rule 1). */
  static async load(files: TlsFiles, options: TlsMaterialOptions): Promise<TlsMaterial> {
    const first = await readSnapshot(files, options.label, 1);
    return new TlsMaterial(files, first, options);
  }

  /** The material new connections use now. */
  get snapshot(): TlsSnapshot {
    return this.current;
  }

  get secureContext(): tls.SecureContext {
    return this.current.secureContext;
  }

  /** Options for tls.Server's constructor or setSecureContext(): the current PEMs. */
  serverOptions(): { cert: Buffer; key: Buffer; ca?: Buffer } {
    const { cert, key, ca } = this.current;
    return ca ? { cert, key, ca } : { cert, key };
  }

  /** Called after each successful reload, with the new material. Returns the unsubscriber. */
  onReload(listener: (s: TlsSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Reads the files again (rules 2 and 3). Resolves true when the new files
   * are now current, false when they were refused and the old ones kept.
   * Never rejects.
   */
  reload(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = async (): Promise<boolean> => {
      let ok = await this.reloadOnce();
      // Bounded: a reload asked for during this one runs once; more requests meanwhile fold into it.
      if (this.again && !this.closed) {
        this.again = false;
        ok = await this.reloadOnce();
      }
      return ok;
    };
    this.running = run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async reloadOnce(): Promise<boolean> {
    let next: TlsSnapshot;
    try {
      next = await readSnapshot(this.files, this.label, this.current.generation + 1);
    } catch (err) {
      this.logger.error(
        { err: (err as Error).message, files: this.files, keeping: this.current.fingerprint },
        `${this.label} TLS files not reloaded: ${(err as Error).message}; still using the previous ones. Fix the files, then send SIGHUP or touch them`,
      );
      return false;
    }
    if (this.closed) return false;
    const previous = this.current;
    this.current = next;
    for (const listener of this.listeners) {
      try {
        listener(next);
      } catch (err) {
        // A server that refuses the new material keeps its old one; the next reload tries again.
        this.logger.error({ err }, `${this.label} TLS: applying reloaded material failed`);
      }
    }
    if (previous.fingerprint !== next.fingerprint || !sameBytes(previous.ca, next.ca)) {
      this.logger.info(
        {
          fingerprint: next.fingerprint,
          serialNumber: next.serialNumber,
          validTo: next.validTo,
          previous: previous.fingerprint,
        },
        `${this.label} TLS certificate reloaded: new connections use it`,
      );
    }
    return true;
  }

  private watch(intervalMs: number): void {
    const paths = [this.files.certFile, this.files.keyFile];
    if (this.files.caFile) paths.push(this.files.caFile);
    for (const path of new Set(paths)) {
      const listener = (now: Stats, before: Stats): void => {
        if (now.mtimeMs === before.mtimeMs && now.ino === before.ino && now.size === before.size)
          return;
        this.scheduleReload();
      };
      watchFile(path, { interval: intervalMs, persistent: false }, listener);
      this.watched.push([path, listener]);
    }
  }

  private scheduleReload(): void {
    if (this.closed) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.reload();
    }, this.debounceMs);
    this.debounceTimer.unref();
  }

  /** Stops watching the files. The current material stays usable. */
  close(): void {
    this.closed = true;
    clearTimeout(this.debounceTimer);
    for (const [path, listener] of this.watched) unwatchFile(path, listener);
    this.watched.length = 0;
    this.listeners.clear();
  }
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.equals(b);
}
