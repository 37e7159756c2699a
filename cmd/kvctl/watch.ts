/** kvctl watch: changes to a key or prefix, one line (or one JSON object) each, until interrupted. */
import type { Command } from 'commander';
import type { WatchResponse } from '../../src/client/index.js';
import { type CommandContext, EXIT_OK, integer } from './common.js';
import { cell } from './printer.js';

function watchLines(change: WatchResponse): string {
  return change.events
    .map((e) => {
      const value = e.type === 'put' ? `  ${cell(e.kv.value)}` : '';
      const prev = e.prevKv ? `  (was ${cell(e.prevKv.value)})` : '';
      return `${change.revision}  ${e.type.padEnd(6)}  ${cell(e.kv.key)}${value}${prev}`;
    })
    .join('\n');
}

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('watch')
    .description('print changes to a key (or prefix) until interrupted')
    .argument('<key>')
    .option('--prefix', 'watch every key starting with KEY')
    .option('--from-revision <n>', 'replay history from this revision', integer(1))
    .option('--prev-kv', 'include the previous value of each key')
    .action((key: string, o, cmd: Command) =>
      ctx.run(cmd, async (client, out, deadline) => {
        const controller = new AbortController();
        const stop = () => controller.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          const watch = client.watch(key, {
            prefix: o.prefix === true,
            fromRevision: o.fromRevision,
            prevKv: o.prevKv === true,
            signal: controller.signal,
            // Open: from here on the watch lives until interrupted (reconnecting on its own).
            onOpen: () => deadline.disarm(),
          });
          // One JSON object per line, so the output can be consumed as a stream.
          for await (const change of watch) out.line(change, () => watchLines(change));
        } finally {
          process.removeListener('SIGINT', stop);
          process.removeListener('SIGTERM', stop);
        }
        return EXIT_OK;
      }),
    );
}
