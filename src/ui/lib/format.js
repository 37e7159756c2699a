/** Numbers as the dashboard shows them. Pure: tested in Node. */

export function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** Seconds as a latency: "0.42 ms", "12.3 ms", "1.20 s". */
export function formatSeconds(s) {
  if (typeof s !== 'number' || !Number.isFinite(s)) return '–';
  if (s < 0.001) return `${(s * 1000).toFixed(2)} ms`;
  if (s < 1) return `${(s * 1000).toFixed(1)} ms`;
  return `${s.toFixed(2)} s`;
}

/** How long ago `thenMs` was, at `nowMs`: "now", "3 s ago", "2 min ago", "never". */
export function formatAgo(thenMs, nowMs) {
  if (typeof thenMs !== 'number') return 'never';
  const s = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (s < 1) return 'now';
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function formatRate(r) {
  if (typeof r !== 'number' || !Number.isFinite(r)) return '–';
  return r >= 100 ? `${Math.round(r)}/s` : `${r.toFixed(1)}/s`;
}

/** A share as a percentage: 0.123 → "12.3 %". */
export function formatPercent(part, whole) {
  if (!(whole > 0) || typeof part !== 'number') return '–';
  return `${((100 * part) / whole).toFixed(1)} %`;
}

/** How far a member is behind the leader, in log entries (never negative). */
export function lagOf(member, leader) {
  if (member === undefined || leader === undefined) return undefined;
  return Math.max(0, leader.commitIndex - member.appliedIndex);
}

/** A key's path segments with the prefix each one ends: "a/b/c" → [["a/", "a"], ["a/b/", "b"]]. */
export function prefixCrumbs(prefix) {
  const crumbs = [];
  let at = 0;
  for (;;) {
    const slash = prefix.indexOf('/', at);
    if (slash < 0) break;
    crumbs.push([prefix.slice(0, slash + 1), prefix.slice(at, slash)]);
    at = slash + 1;
  }
  return crumbs;
}

/** A key as it goes into a URL path: each segment encoded, the slashes kept. */
export function keyPath(key) {
  return key.split('/').map(encodeURIComponent).join('/');
}
