/**
 * A raw HTTP/1.1 client over one TCP connection per request, for the API fuzzer:
 * it sends exactly the bytes it is given (odd paths, bad header values, raw
 * UTF-8, bodies that do not match their content-type) where fetch or undici
 * would refuse or normalize them, and bounds every exchange in time.
 * 127.0.0.1 only.
 */
import { connect, type Socket } from 'node:net';

export interface WireRequest {
  method: string;
  /** The request target exactly as sent (already percent-encoded, or deliberately not). */
  target: string;
  headers: [string, string][];
  body?: Buffer;
}

export interface WireReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The stream was cut by us (drop) before its end: the body is what had arrived. */
  dropped: boolean;
  /** Milliseconds from connect to the status line. */
  firstByteMs: number;
}

export class WireTimeout extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = 'WireTimeout';
  }
}

export interface SendOptions {
  /** A hang is no complete status line and headers within this many ms. */
  headersWithinMs: number;
  /** For a stream: cut the connection this many ms after the headers (a drop mid-way). */
  dropAfterMs?: number;
  /** Without a drop, the whole body must arrive within this many ms of the headers. */
  bodyWithinMs?: number;
  /** Cut the connection this many ms after sending if no answer came yet (status 0, dropped). */
  abortAfterMs?: number;
}

/** Serializes a request; `Connection: close` and the body's length are added unless the caller set them. */
export function encodeRequest(req: WireRequest, host: string): Buffer {
  const names = new Set(req.headers.map(([n]) => n.toLowerCase()));
  const lines = [`${req.method} ${req.target} HTTP/1.1`];
  if (!names.has('host')) lines.push(`host: ${host}`);
  for (const [n, v] of req.headers) lines.push(`${n}: ${v}`);
  if (!names.has('connection')) lines.push('connection: close');
  if (req.body !== undefined && !names.has('content-length') && !names.has('transfer-encoding'))
    lines.push(`content-length: ${req.body.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8');
  // A body declared chunked is sent in chunks (two, when it has bytes), ended by the empty one.
  if (
    /chunked/i.test(req.headers.find(([n]) => n.toLowerCase() === 'transfer-encoding')?.[1] ?? '')
  ) {
    const body = req.body ?? Buffer.alloc(0);
    const half = body.length >> 1;
    const chunks = [body.subarray(0, half), body.subarray(half)].filter((c) => c.length > 0);
    return Buffer.concat([
      head,
      ...chunks.flatMap((c) => [
        Buffer.from(`${c.length.toString(16)}\r\n`),
        c,
        Buffer.from('\r\n'),
      ]),
      Buffer.from('0\r\n\r\n'),
    ]);
  }
  return req.body === undefined ? head : Buffer.concat([head, req.body]);
}

interface Head {
  status: number;
  headers: Record<string, string>;
  bodyStart: number;
}

function parseHead(buf: Buffer): Head | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new Error(`not an HTTP status line: ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0)
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(m[1]), headers, bodyStart: end + 4 };
}

/** Decodes a chunked body as far as it goes; `complete` once the last chunk arrived. */
function dechunk(buf: Buffer): { body: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return { body: Buffer.concat(parts), complete: false };
    const size = Number.parseInt(buf.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size');
    if (size === 0) return { body: Buffer.concat(parts), complete: true };
    if (buf.length < eol + 2 + size + 2) {
      parts.push(buf.subarray(eol + 2, Math.min(buf.length, eol + 2 + size)));
      return { body: Buffer.concat(parts), complete: false };
    }
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

function bodyOf(head: Head, raw: Buffer, method: string): { body: Buffer; complete: boolean } {
  if (method === 'HEAD' || head.status === 204 || head.status === 304)
    return { body: Buffer.alloc(0), complete: true };
  const rest = raw.subarray(head.bodyStart);
  if (head.headers['transfer-encoding']?.toLowerCase() === 'chunked') return dechunk(rest);
  const length = head.headers['content-length'];
  if (length !== undefined) {
    const n = Number(length);
    return { body: rest.subarray(0, n), complete: rest.length >= n };
  }
  return { body: rest, complete: false };
}

/** Sends one request to 127.0.0.1:`port` and reads its answer, within the bounds of `opts`. */
export function send(port: number, req: WireRequest, opts: SendOptions): Promise<WireReply> {
  const started = Date.now();
  return new Promise<WireReply>((resolve, reject) => {
    const socket: Socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let head: Head | undefined;
    let firstByteMs = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: Error | undefined, dropped = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      if (!head)
        return resolve({ status: 0, headers: {}, body: Buffer.alloc(0), dropped, firstByteMs });
      const { body } = bodyOf(head, Buffer.concat(chunks), req.method);
      resolve({ status: head.status, headers: head.headers, body, dropped, firstByteMs });
    };
    const arm = (ms: number, onFire: () => void) => {
      clearTimeout(timer);
      timer = setTimeout(onFire, ms);
    };
    arm(opts.headersWithinMs, () =>
      finish(new WireTimeout(`${req.method} ${req.target.slice(0, 120)}`, opts.headersWithinMs)),
    );
    socket.on('connect', () => {
      socket.write(encodeRequest(req, `127.0.0.1:${port}`));
      if (opts.abortAfterMs !== undefined) {
        const abortTimer = setTimeout(() => {
          if (!head) finish(undefined, true);
        }, opts.abortAfterMs);
        socket.once('close', () => clearTimeout(abortTimer));
      }
    });
    socket.on('data', (data: Buffer) => {
      chunks.push(data);
      try {
        while (!head) {
          const raw = Buffer.concat(chunks);
          const parsed = parseHead(raw);
          if (!parsed) return;
          // An interim answer (100 Continue): the real one follows.
          if (parsed.status < 200) {
            chunks.splice(0, chunks.length, raw.subarray(parsed.bodyStart));
            continue;
          }
          head = parsed;
          firstByteMs = Date.now() - started;
          if (opts.dropAfterMs !== undefined) arm(opts.dropAfterMs, () => finish(undefined, true));
          else {
            const ms = opts.bodyWithinMs ?? opts.headersWithinMs;
            arm(ms, () => finish(new WireTimeout(`body of ${req.method} ${req.target}`, ms)));
          }
        }
        if (bodyOf(head, Buffer.concat(chunks), req.method).complete) finish(undefined);
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('end', () => {
      if (head) finish(undefined);
      else finish(new Error(`${req.method} ${req.target.slice(0, 120)}: closed without an answer`));
    });
    // A reset after the answer is complete is fine; before it, the answer is what we have.
    socket.on('error', (err) => {
      if (head) finish(undefined);
      else finish(err);
    });
  });
}
