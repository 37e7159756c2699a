import { RaftkvError } from './errors.js';

/**
 * A key in a URL path, per API.md: `/` inside a key stays a path separator
 * (`app/config/db` → `app/config/db`), every segment is percent-encoded, and
 * the dot segments `.` and `..` are encoded too so nothing on the way
 * normalises them away.
 */
export function encodeKey(key: string): string {
  return key
    .split('/')
    .map((segment) => {
      if (segment === '.') return '%2E';
      if (segment === '..') return '%2E%2E';
      return encodeComponent(segment);
    })
    .join('/');
}

/** `?a=1&b=x` from the defined entries (booleans only when true), or '' when none. */
export function queryString(params: Record<string, string | number | boolean | undefined>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === false) continue;
    parts.push(`${encodeComponent(name)}=${encodeComponent(String(value))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** encodeURIComponent, with a lone surrogate (not encodable as UTF-8) as an invalid_request. */
function encodeComponent(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    throw new RaftkvError(
      'invalid_request',
      `not valid Unicode (a lone surrogate): ${JSON.stringify(text)}`,
    );
  }
}
