/** Types of sse.js (the browser module), for its Node tests. */
export interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
}
export function sseParser(onEvent: (e: SseEvent) => void): { feed(chunk: string): void };
