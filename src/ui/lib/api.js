/**
 * The page's one way to the public HTTP API (API.md): JSON calls to the
 * member in use (or a named one), with the user's token kept in memory only,
 * and watch streams read with fetch() so they can carry that token.
 */
import { sseParser } from './sse.js';

export class Api {
  constructor(base) {
    /** The client URL of the member in use ("" = the member that served the page). */
    this.base = base;
    /** The bearer token after login; never stored anywhere else. */
    this.token = undefined;
    /** Called on any 401: the page shows its login form. */
    this.onUnauthorized = () => {};
  }

  headers(json) {
    const h = {};
    if (this.token !== undefined) h.authorization = `Bearer ${this.token}`;
    if (json) h['content-type'] = 'application/json';
    return h;
  }

  /**
   * One request; resolves to {status, ok, body} for any HTTP answer, and
   * rejects only when the member could not be reached (or took too long).
   */
  async call(method, path, { body, base, timeoutMs = 5000 } = {}) {
    const res = await fetch(`${base ?? this.base}${path}`, {
      method,
      headers: this.headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = text;
    }
    if (res.status === 401) this.onUnauthorized();
    return { status: res.status, ok: res.ok, body: json };
  }

  async text(path, { base, timeoutMs = 5000 } = {}) {
    const res = await fetch(`${base ?? this.base}${path}`, {
      headers: this.headers(false),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.text();
  }

  async blob(path, { timeoutMs = 60000 } = {}) {
    const res = await fetch(`${this.base}${path}`, {
      headers: this.headers(false),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return res;
  }

  /**
   * A watch of `prefix` (API.md "Watch") that survives its member: when the
   * stream ends or breaks, it starts again on whatever member is in use then,
   * from the revision after the last one seen (Last-Event-ID).
   * Calls onChange(data) per change, onState(text) on connection changes.
   * Returns stop().
   */
  watch(prefix, { onChange, onState, fromRevision }) {
    let stopped = false;
    let lastId = fromRevision !== undefined ? String(fromRevision - 1) : undefined;
    let controller;
    const path =
      prefix === ''
        ? '/v1/watch?prefix=true'
        : `/v1/watch/${prefix.split('/').map(encodeURIComponent).join('/')}?prefix=true`;
    const run = async () => {
      while (!stopped) {
        controller = new AbortController();
        const base = this.base;
        let end = 'ended';
        try {
          const headers = this.headers(false);
          if (lastId !== undefined) headers['last-event-id'] = lastId;
          const res = await fetch(`${base}${path}`, { headers, signal: controller.signal });
          if (res.status === 401) this.onUnauthorized();
          if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`);
          onState({ live: true, text: `watching on ${base || 'this member'}` });
          const decoder = new TextDecoder();
          const parser = sseParser((e) => {
            if (e.event === 'change') {
              lastId = e.id;
              onChange(JSON.parse(e.data));
            } else if (e.event === 'progress') {
              const r = JSON.parse(e.data).revision;
              if (lastId === undefined) lastId = String(r);
            } else if (e.event === 'compacted') {
              end = 'compacted';
            } else if (e.event === 'closed') {
              const c = JSON.parse(e.data);
              if (c.reason === 'permission_revoked') end = 'revoked';
              if (c.revision !== undefined) lastId = String(c.revision);
            }
          });
          const reader = res.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            parser.feed(decoder.decode(value, { stream: true }));
          }
        } catch (err) {
          end = stopped ? 'stopped' : `broken (${err.message})`;
        }
        if (stopped) return;
        if (end === 'compacted' || end === 'revoked') {
          onState({ live: false, text: `watch ended: ${end}` });
          return;
        }
        onState({ live: false, text: `watch ${end}; resuming…` });
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    run();
    return () => {
      stopped = true;
      controller?.abort();
    };
  }
}
