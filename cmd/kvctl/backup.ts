/**
 * kvctl snapshot FILE: a backup of the cluster's data, for `raftkv restore`.
 * On a terminal, stderr shows the bytes received and the rate as they come.
 */
import { rename, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { TransferProgress } from '../progress.js';
import { type CommandContext, EXIT_OK } from './common.js';
import { fields } from './printer.js';

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('snapshot')
    .description("save a backup of the cluster's data to a file (restore it with `raftkv restore`)")
    .argument('<file>', 'where to write it (replaced if it exists)')
    .action((file: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const progress = new TransferProgress(process.stderr, 'received');
        let bytes: Uint8Array;
        try {
          bytes = await client.snapshot({
            onProgress: (received, total) => progress.update(received, total),
          });
        } catch (err) {
          progress.abandon();
          throw err;
        }
        progress.finish();
        // Written beside the target, then renamed: never half a backup under the real name.
        await writeFile(`${file}.part`, bytes);
        await rename(`${file}.part`, file);
        out.show({ file, bytes: bytes.length }, () =>
          fields([
            ['file', file],
            ['bytes', bytes.length],
          ]),
        );
        return EXIT_OK;
      }),
    );
}
