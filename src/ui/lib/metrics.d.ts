/** Types of metrics.js (the browser module), for its Node tests. */
export type Kind = 'read' | 'write' | 'watch';
export interface Histogram {
  bounds: number[];
  buckets: number[];
  count: number;
}
export interface KindPoint {
  rate: number;
  p50: number | undefined;
  p99: number | undefined;
}
export const KINDS: Kind[];
export function kindOf(method: string, route: string): Kind | undefined;
export function parseLabels(text: string): Record<string, string>;
export function requestHistograms(text: string): Record<Kind, Histogram>;
export function histogramDelta(prev: Histogram | undefined, cur: Histogram): Histogram;
export function histogramSum(a: Histogram | undefined, b: Histogram | undefined): Histogram;
export function quantile(h: Histogram, q: number): number | undefined;
export function samplePoint(
  prev: Map<string, Record<Kind, Histogram>>,
  cur: Map<string, Record<Kind, Histogram>>,
  seconds: number,
): Record<Kind, KindPoint>;
