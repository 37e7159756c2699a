import type { Command, Compare, TxnOp } from '../kv/commands.js';
import type {
  CompactResult,
  DeleteResult,
  ErrorResult,
  PutResult,
  TxnResult,
} from '../kv/results.js';
import { ServerError } from './errors.js';
import type { RaftKvNode } from './node.js';
import type { WatchParams, WatchSink } from './watches.js';

type WriteOpts = { idempotencyKey?: string; signal?: AbortSignal };
type ReadOpts = {
  consistency: 'linearizable' | 'serializable';
  revision?: number;
  minRevision?: number;
  signal?: AbortSignal;
};

/**
 * The service the HTTP API consumes (it matches src/api's ApiService
 * structurally; the server does not import the API layer). Translates API
 * requests into commands and reads on a RaftKvNode.
 */
export class KvService {
  constructor(readonly node: RaftKvNode) {}

  get requestTimeoutMs(): number {
    return this.node.requestTimeoutMs;
  }

  private async command<T>(cmd: Command, opts: WriteOpts, op: string): Promise<T | ErrorResult> {
    const result = await this.node.write(cmd, opts);
    if (!result.ok) return result;
    if (result.op !== op)
      throw new ServerError('timeout', `unexpected result ${result.op} for ${op}`);
    return result as T;
  }

  put(
    req: { key: string; value: string; lease?: string; prevRevision?: number; prevValue?: string },
    opts: WriteOpts,
  ) {
    return this.command<PutResult>({ type: 'put', ...req }, opts, 'put');
  }

  delete(req: { key: string; prefix: boolean; prevRevision?: number }, opts: WriteOpts) {
    return this.command<DeleteResult>({ type: 'delete', ...req }, opts, 'delete');
  }

  txn(req: { compare: Compare[]; success: TxnOp[]; failure: TxnOp[] }, opts: WriteOpts) {
    return this.command<TxnResult>({ type: 'txn', ...req }, opts, 'txn');
  }

  compact(revision: number, opts: WriteOpts) {
    return this.command<CompactResult>({ type: 'compact', revision }, opts, 'compact');
  }

  async get(key: string, opts: ReadOpts) {
    await this.node.readBarrier(opts);
    return this.node.store.get(
      key,
      opts.revision !== undefined ? { revision: opts.revision } : undefined,
    );
  }

  async range(
    req: { prefix: string; after?: string; limit?: number; keysOnly: boolean; revision?: number },
    opts: ReadOpts,
  ) {
    await this.node.readBarrier(opts);
    const r = this.node.store.range(req);
    if (!r.ok) return r;
    return { kvs: [...r.kvs], more: r.more, revision: r.revision };
  }

  async watch(req: WatchParams, sink: WatchSink) {
    return this.node.watch(req, sink);
  }

  status() {
    return this.node.status();
  }

  async members() {
    return this.node.membersView();
  }

  async health() {
    return this.node.health();
  }

  async metrics() {
    const registry = this.node.metrics.registry;
    return { contentType: registry.contentType, body: await registry.metrics() };
  }
}
