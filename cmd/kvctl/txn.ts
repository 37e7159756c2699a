/** kvctl txn: API.md's transaction body, from a file or stdin. */
import type { Command } from 'commander';
import type { TxnOp, TxnRequest, TxnResponse } from '../../src/client/index.js';
import { type CommandContext, EXIT_FAILED, EXIT_OK, UsageError } from './common.js';
import { fields, table } from './printer.js';
import { decodeText, readFileBytes, readStdin } from './value-input.js';

function txnTable(request: TxnRequest, res: TxnResponse): string {
  const ops: TxnOp[] = (res.succeeded ? request.success : request.failure) ?? [];
  const rows: unknown[][] = [];
  res.results.forEach((r, i) => {
    const key = ops[i]?.key;
    if (r.op === 'put') rows.push([i, 'put', r.kv.key, `version ${r.kv.version}`]);
    else if (r.op === 'delete') rows.push([i, 'delete', key, `deleted ${r.deleted}`]);
    else if (r.kvs.length === 0) rows.push([i, 'get', key, '(none)']);
    else for (const kv of r.kvs) rows.push([i, 'get', kv.key, kv.value]);
  });
  const head = fields([
    ['succeeded', res.succeeded],
    ['revision', res.revision],
  ]);
  return rows.length ? `${head}\n\n${table(['#', 'OP', 'KEY', 'RESULT'], rows)}` : head;
}

async function readTxn(file: string | undefined): Promise<TxnRequest> {
  const fromStdin = file === undefined || file === '-';
  const text = decodeText(
    fromStdin ? await readStdin() : await readFileBytes(file),
    fromStdin ? 'stdin' : file,
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`txn: invalid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new UsageError(
      'txn: expected a JSON object {"compare": [...], "success": [...], "failure": [...]}',
    );
  return parsed as TxnRequest;
}

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('txn')
    .description('run a transaction: API.md\'s JSON body {"compare", "success", "failure"}')
    .argument('[file]', 'JSON file; stdin when absent or "-"')
    .action(async (file: string | undefined, _o, cmd: Command) => {
      const request = await readTxn(file);
      return ctx.run(cmd, async (client, out) => {
        const res = await client.txn(request);
        out.show(res, () => txnTable(request, res));
        return res.succeeded ? EXIT_OK : EXIT_FAILED;
      });
    });
}
