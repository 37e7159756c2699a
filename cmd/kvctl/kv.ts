/** kvctl get, put, del, ls, compact: the keys themselves. */
import { type Command, Option } from 'commander';
import type { KeyValue } from '../../src/client/index.js';
import { type CommandContext, EXIT_FAILED, EXIT_OK, integer } from './common.js';
import { fields, table } from './printer.js';
import { valueFrom } from './value-input.js';

export function kvTable(kvs: KeyValue[], keysOnly = false): string {
  if (keysOnly)
    return table(
      ['KEY', 'VERSION', 'MOD-REV'],
      kvs.map((kv) => [kv.key, kv.version, kv.modRevision]),
    );
  return table(
    ['KEY', 'VALUE', 'VERSION', 'CREATE-REV', 'MOD-REV', 'LEASE'],
    kvs.map((kv) => [kv.key, kv.value, kv.version, kv.createRevision, kv.modRevision, kv.lease]),
  );
}

const consistency = () =>
  new Option('--consistency <level>', 'read consistency').choices(['linearizable', 'serializable']);

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('get')
    .description('print a key')
    .argument('<key>')
    .option('--revision <n>', 'read as of this revision', integer(1))
    .addOption(consistency())
    .option('--min-revision <n>', 'wait until the node has applied this revision', integer(1))
    .action((key: string, o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.get(key, {
          revision: o.revision,
          consistency: o.consistency,
          minRevision: o.minRevision,
        });
        out.show(res, () => kvTable([res.kv]));
        return EXIT_OK;
      }),
    );

  program
    .command('put')
    .description(
      "write a key: VALUE, - to read it from stdin, or --file F (put -- KEY VALUE when VALUE starts with '-')",
    )
    .argument('<key>')
    .argument('[value]', 'the value; - reads it from stdin (all of it, byte for byte)')
    .option('--file <file>', 'read the value from this file (byte for byte)')
    .option('--lease <id>', 'attach the key to this lease')
    .option('--prev-revision <n>', 'only if the key is at this modRevision (0: absent)', integer(0))
    .option('--prev-value <value>', 'only if the key has this value')
    .action(async (key: string, arg: string | undefined, o, cmd: Command) => {
      const value = await valueFrom('put', arg, o.file);
      return ctx.run(cmd, async (client, out) => {
        const res = await client.put(key, value, {
          lease: o.lease,
          prevRevision: o.prevRevision,
          prevValue: o.prevValue,
        });
        out.show(res, () =>
          fields([
            ['revision', res.revision],
            ['key', res.kv.key],
            ['version', res.kv.version],
            ['previous', res.prevKv ? res.prevKv.value : null],
          ]),
        );
        return EXIT_OK;
      });
    });

  program
    .command('del')
    .alias('delete')
    .description('delete a key, or every key under a prefix')
    .argument('<key>')
    .option('--prefix', 'delete every key starting with KEY')
    .option('--prev-revision <n>', 'only if the key is at this modRevision', integer(0))
    .action((key: string, o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.delete(key, {
          prefix: o.prefix === true,
          prevRevision: o.prevRevision,
        });
        out.show(res, () =>
          fields([
            ['deleted', res.deleted],
            ['revision', res.revision],
          ]),
        );
        // Deleting a key that does not exist is "not found"; an empty prefix is fine.
        return res.deleted === 0 && o.prefix !== true ? EXIT_FAILED : EXIT_OK;
      }),
    );

  program
    .command('ls')
    .alias('list')
    .description('list keys in order')
    .argument('[prefix]', 'only keys starting with this', '')
    .option('--limit <n>', 'at most this many keys', integer(1))
    .option('--after <key>', 'continue a listing after this key')
    .option('--keys-only', 'omit values')
    .option('--revision <n>', 'list as of this revision', integer(1))
    .addOption(consistency())
    .action((prefix: string, o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const keysOnly = o.keysOnly === true;
        const res = await client.list({
          prefix,
          limit: o.limit,
          after: o.after,
          keysOnly,
          revision: o.revision,
          consistency: o.consistency,
        });
        out.show(res, () => {
          const text = res.kvs.length ? kvTable(res.kvs, keysOnly) : '(no keys)';
          const last = res.kvs[res.kvs.length - 1];
          return res.more && last
            ? `${text}\n(more keys: continue with --after ${JSON.stringify(last.key)})`
            : text;
        });
        return EXIT_OK;
      }),
    );

  program
    .command('compact')
    .description('drop history before a revision')
    .argument('<revision>', 'first revision to keep', integer(1))
    .action((revision: number, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.compact(revision);
        out.show(res, () =>
          fields([
            ['revision', res.revision],
            ['compactRevision', res.compactRevision],
          ]),
        );
        return EXIT_OK;
      }),
    );
}
