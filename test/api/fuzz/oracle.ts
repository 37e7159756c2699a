/**
 * The API fuzzer's oracle for one answer: no 5xx other than 503/504/507, an
 * error body of API.md's shape with a code from its table (and that code's
 * status), the statuses API.md gives for the case when it says, and streams
 * that look like Server-Sent Events.
 */
import { statusOfCode } from '../../../src/api/errors.js';
import type { FuzzRequest } from './requests.js';
import type { WireReply } from './wire.js';

/** API.md's table and the project's documented additions (src/api/errors.ts), with quota_exceeded (507). */
const CODES: Record<string, number> = { ...statusOfCode, quota_exceeded: 507 };

/** Statuses any request may get: backpressure, no leader right now, outcome unknown, quota alarm. */
const ALWAYS_ALLOWED = new Set([429, 503, 504, 507]);

/** Probes answer 503 with their own body (API.md: `{"status", "reason"}`), not an error body. */
const PROBES = new Set(['GET /health', 'GET /readyz', 'GET /livez']);

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** What is wrong with `reply` as an answer to `req` (empty: nothing). */
export function problemsOf(req: FuzzRequest, reply: WireReply): string[] {
  const problems: string[] = [];
  if (reply.status === 0) return problems; // we cut it before any answer
  const { status } = reply;
  const contentType = reply.headers['content-type'] ?? '';
  if (status >= 500 && !ALWAYS_ALLOWED.has(status)) problems.push(`status ${status}`);
  if (req.expect && !req.expect.includes(status) && !ALWAYS_ALLOWED.has(status))
    problems.push(`status ${status}, API.md says ${req.expect.join(' or ')}`);
  const isProbe = PROBES.has(req.route);
  if (status >= 400 && req.method !== 'HEAD' && !(isProbe && status === 503)) {
    const body = parseJson(reply.body) as
      | { error?: { code?: unknown; message?: unknown } }
      | undefined;
    if (!/^application\/json/.test(contentType))
      problems.push(`error with content-type "${contentType}"`);
    const code = body?.error?.code;
    if (typeof code !== 'string' || !(code in CODES))
      problems.push(
        `error body without a code of API.md's table: ${reply.body.toString('utf8').slice(0, 200)}`,
      );
    else if (CODES[code] !== status)
      problems.push(`code ${code} with status ${status} (API.md: ${CODES[code]})`);
    if (typeof body?.error?.message !== 'string' || body.error.message === '')
      problems.push('error body without a message');
    if (body && 'statusCode' in body) problems.push('a framework error body');
  }
  if (status >= 200 && status < 300 && req.method !== 'HEAD') {
    if (contentType.startsWith('text/event-stream'))
      problems.push(...sseProblems(reply.body.toString('utf8')));
    else if (req.route === 'GET /v1/snapshot') {
      if (!contentType.startsWith('application/octet-stream'))
        problems.push(`snapshot as "${contentType}"`);
    } else if (req.route === 'GET /metrics') {
      if (!contentType.startsWith('text/plain')) problems.push(`metrics as "${contentType}"`);
    } else if (!reply.dropped) {
      const body = parseJson(reply.body);
      if (body === null || typeof body !== 'object')
        problems.push(
          `2xx body is not a JSON object: ${reply.body.toString('utf8').slice(0, 120)}`,
        );
    }
    const asksForStream =
      req.target.startsWith('/v1/watch/') || /[?&]watch=true(&|$)/.test(req.target);
    if (req.kind === 'stream' && asksForStream && !contentType.startsWith('text/event-stream'))
      problems.push(`a watch answered 2xx with "${contentType}"`);
  }
  return problems;
}

/** Complete events of a stream cut mid-way: each has an event name and JSON data. */
function sseProblems(text: string): string[] {
  const blocks = text.split('\n\n');
  blocks.pop(); // the last one may be cut
  const problems: string[] = [];
  for (const block of blocks) {
    const lines = block.split('\n').filter((l) => !l.startsWith(':'));
    if (lines.length === 0) continue;
    const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
    const data = lines.find((l) => l.startsWith('data: '))?.slice(6);
    if (!event || data === undefined) {
      problems.push(`SSE block without event or data: ${block.slice(0, 120)}`);
      continue;
    }
    try {
      JSON.parse(data);
    } catch {
      problems.push(`SSE ${event} data is not JSON: ${data.slice(0, 120)}`);
    }
  }
  return problems;
}
