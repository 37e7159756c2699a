/**
 * `npm run bench -- --alloc-prof`: what each raftkv member allocates during a
 * cell's measured window, from V8's sampling heap profiler reached through the
 * inspector (the members run with `--inspect=127.0.0.1:0`).
 *
 * The profiler is asked to keep the samples of objects the GC has already
 * collected, so a profile estimates everything allocated in the window, not
 * what is still alive at its end: the young-generation churn that makes the
 * scavenges of `raftkv_gc_pause_seconds`. Each profile is written as a
 * `.heapprofile` (Chrome DevTools' Memory tab opens it), and the bench prints
 * bytes per operation and the allocating functions with the largest share.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { WebSocket } from 'undici';

/** What the bench stores and prints for one member. */
export interface AllocationSummary {
  member: number;
  /** Estimated bytes allocated in the window, per operation the cell completed. */
  kbPerOp: number;
  mbPerSecond: number;
  /** The functions that allocated most (self), with their share of the total. */
  top: Array<{ site: string; sharePct: number; kbPerOp: number }>;
  file: string;
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children?: ProfileNode[];
}
interface SamplingProfile {
  head: ProfileNode;
}

const CALL_TIMEOUT_MS = 10_000;
/** Bytes between samples: V8's default is 32 KiB; finer costs the member more. */
const SAMPLING_INTERVAL_BYTES = 32 * 1024;

/** The inspector's URL from a member's log ("Debugger listening on ws://…"), waiting up to 10 s. */
export async function inspectorUrl(logFile: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    let text = '';
    try {
      text = readFileSync(logFile, 'utf8');
    } catch {}
    const match = /Debugger listening on (ws:\/\/\S+)/.exec(text);
    if (match) return match[1]!;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no inspector URL in ${logFile} after 10 s (was --inspect passed?)`);
}

/** One inspector session: JSON-RPC over the WebSocket, each call bounded in time. */
class InspectorSession {
  private nextId = 1;
  private readonly waits = new Map<number, (result: unknown, error?: string) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (event) => {
      const msg = JSON.parse(String(event.data)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
      };
      if (msg.id === undefined) return;
      this.waits.get(msg.id)?.(msg.result, msg.error?.message);
      this.waits.delete(msg.id);
    });
  }

  static open(url: string): Promise<InspectorSession> {
    const ws = new WebSocket(url);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error(`inspector ${url}: no connection after ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      ws.addEventListener('open', () => {
        clearTimeout(timer);
        resolve(new InspectorSession(ws));
      });
      ws.addEventListener('error', () => {
        clearTimeout(timer);
        reject(new Error(`inspector ${url}: cannot connect`));
      });
    });
  }

  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waits.delete(id);
        reject(new Error(`inspector: ${method} unanswered after ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.waits.set(id, (result, error) => {
        clearTimeout(timer);
        if (error) reject(new Error(`inspector: ${method}: ${error}`));
        else resolve(result as T);
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** Samples the allocations of every member between start() and stop(). */
export class AllocationSampler {
  private constructor(private readonly sessions: InspectorSession[]) {}

  static async connect(urls: string[]): Promise<AllocationSampler> {
    const sessions = await Promise.all(urls.map((u) => InspectorSession.open(u)));
    await Promise.all(sessions.map((s) => s.call('HeapProfiler.enable')));
    return new AllocationSampler(sessions);
  }

  async start(): Promise<void> {
    await Promise.all(
      this.sessions.map((s) =>
        s.call('HeapProfiler.startSampling', {
          samplingInterval: SAMPLING_INTERVAL_BYTES,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        }),
      ),
    );
  }

  /** Stops sampling; writes `<prefix>-n<i>.heapprofile` and summarizes each member. */
  async stop(prefix: string, ops: number, seconds: number): Promise<AllocationSummary[]> {
    const profiles = await Promise.all(
      this.sessions.map((s) => s.call<{ profile: SamplingProfile }>('HeapProfiler.stopSampling')),
    );
    return profiles.map(({ profile }, i) => {
      const file = `${prefix}-n${i + 1}.heapprofile`;
      writeFileSync(file, JSON.stringify(profile));
      return { member: i, file, ...summarize(profile, ops, seconds) };
    });
  }

  close(): void {
    for (const s of this.sessions) s.close();
  }
}

const TOP_SITES = 8;

function siteName(frame: ProfileNode['callFrame']): string {
  const where = frame.url
    ? `${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '')}:${frame.lineNumber + 1}`
    : '(native)';
  return `${frame.functionName || '(anonymous)'} ${where}`;
}

/** Bytes per op and the top allocating functions of one profile. */
export function summarize(
  profile: SamplingProfile,
  ops: number,
  seconds: number,
): Omit<AllocationSummary, 'member' | 'file'> {
  const bySite = new Map<string, number>();
  let total = 0;
  const stack: ProfileNode[] = [profile.head];
  for (let node = stack.pop(); node; node = stack.pop()) {
    if (node.selfSize > 0) {
      total += node.selfSize;
      const site = siteName(node.callFrame);
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    }
    if (node.children) stack.push(...node.children);
  }
  const perOp = (bytes: number) => (ops > 0 ? bytes / ops / 1024 : 0);
  const top = [...bySite]
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOP_SITES)
    .map(([site, bytes]) => ({
      site,
      sharePct: total > 0 ? (bytes / total) * 100 : 0,
      kbPerOp: perOp(bytes),
    }));
  return { kbPerOp: perOp(total), mbPerSecond: seconds > 0 ? total / seconds / 1e6 : 0, top };
}

/** Lines for the console, one block per member. */
export function formatAllocations(cell: string, members: AllocationSummary[]): string[] {
  const lines = [
    `  ${cell}: allocated per operation (V8 sampling heap profiler, collected objects included)`,
  ];
  for (const m of members) {
    lines.push(
      `    n${m.member + 1}  ${m.kbPerOp.toFixed(1)} KB/op, ${m.mbPerSecond.toFixed(0)} MB/s  (${m.file})`,
    );
    for (const s of m.top)
      lines.push(
        `        ${s.sharePct.toFixed(1).padStart(5)} %  ${s.kbPerOp.toFixed(2).padStart(6)} KB/op  ${s.site}`,
      );
  }
  return lines;
}
