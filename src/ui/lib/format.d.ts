/** Types of format.js (the browser module), for its Node tests. */
export function formatBytes(n: number | undefined): string;
export function formatSeconds(s: number | undefined): string;
export function formatAgo(thenMs: number | undefined, nowMs: number): string;
export function formatRate(r: number | undefined): string;
export function formatPercent(part: number | undefined, whole: number | undefined): string;
export function lagOf(
  member: { appliedIndex: number } | undefined,
  leader: { commitIndex: number } | undefined,
): number | undefined;
export function prefixCrumbs(prefix: string): [string, string][];
export function keyPath(key: string): string;
