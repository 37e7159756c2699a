/** kvctl registry register|lookup|ls|watch|unregister: unique names owned by leases. */
import type { Command } from 'commander';
import {
  isRaftkvError,
  type RegistryEntry,
  type RegistryWatchResponse,
} from '../../src/client/index.js';
import { type CommandContext, EXIT_FAILED, EXIT_OK, integer, note } from './common.js';
import { cell, fields, table } from './printer.js';
import {
  DEFAULT_LEASE_TTL,
  heldLease,
  holdUntilInterruptedOrLost,
  interrupted,
} from './session.js';
import { valueFrom } from './value-input.js';

function entryTable(entries: RegistryEntry[]): string {
  return table(
    ['NAME', 'VALUE', 'LEASE', 'CREATE-REV', 'MOD-REV'],
    entries.map((e) => [e.name, e.value, e.lease, e.createRevision, e.modRevision]),
  );
}

function registryLines(change: RegistryWatchResponse): string {
  return change.events
    .map((e) => {
      const value = e.type === 'put' ? `  ${cell(e.entry.value)}` : '';
      return `${change.revision}  ${e.type.padEnd(6)}  ${cell(e.entry.name)}${value}`;
    })
    .join('\n');
}

export function register(program: Command, ctx: CommandContext): void {
  const registry = program
    .command('registry')
    .description('unique names owned by leases (service discovery)');

  registry
    .command('register')
    .description(
      'register NAME with a new lease, keep it until interrupted, then revoke it (exit 1 if taken, 3 if the lease is lost)',
    )
    .argument('<name>')
    .argument('[value]', 'its value; - reads it from stdin')
    .option('--file <file>', 'read the value from this file')
    .option('--ttl <s>', 'TTL of the lease, in seconds', integer(1), DEFAULT_LEASE_TTL)
    .action(async (name: string, arg: string | undefined, o, cmd: Command) => {
      const value = await valueFrom('registry register', arg, o.file);
      return ctx.run(cmd, async (client, out, deadline) => {
        const held = await heldLease(client, o.ttl);
        const stop = interrupted();
        try {
          let entry: RegistryEntry;
          try {
            entry = await client.register(name, value, held.id);
          } catch (err) {
            if (isRaftkvError(err, 'name_taken')) {
              const holder = err.entry as RegistryEntry | null | undefined;
              note(
                `error: name_taken: "${name}" is held by lease ${holder?.lease ?? '?'}` +
                  (holder ? ` (value ${JSON.stringify(holder.value)})` : ''),
              );
              return EXIT_FAILED;
            }
            throw err;
          }
          out.line(
            entry,
            () => `registered ${cell(entry.name)} = ${cell(entry.value)} (lease ${held.id})`,
          );
          deadline.disarm();
          return await holdUntilInterruptedOrLost(stop, held.keeper.lost);
        } finally {
          stop.dispose();
          deadline.arm();
          await held.release();
        }
      });
    });

  registry
    .command('lookup')
    .description('print the entry of a name')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const entry = await client.lookup(name);
        out.show(entry, () => entryTable([entry]));
        return EXIT_OK;
      }),
    );

  registry
    .command('ls')
    .alias('list')
    .description('list registered names')
    .argument('[prefix]', 'only names starting with this', '')
    .action((prefix: string, _o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.registry(prefix);
        out.show(res, () => (res.entries.length ? entryTable(res.entries) : '(no entries)'));
        return EXIT_OK;
      }),
    );

  registry
    .command('watch')
    .description('print registry changes under a prefix until interrupted')
    .argument('[prefix]', 'only names starting with this', '')
    .option('--from-revision <n>', 'replay history from this revision', integer(1))
    .action((prefix: string, o, cmd: Command) =>
      ctx.run(cmd, async (client, out, deadline) => {
        const controller = new AbortController();
        const stop = interrupted();
        void stop.promise.then(() => controller.abort());
        try {
          const watch = client.watchRegistry(prefix, {
            ...(o.fromRevision !== undefined ? { fromRevision: o.fromRevision } : {}),
            signal: controller.signal,
            onOpen: () => deadline.disarm(),
          });
          for await (const change of watch) out.line(change, () => registryLines(change));
        } finally {
          stop.dispose();
        }
        return EXIT_OK;
      }),
    );

  registry
    .command('unregister')
    .description('remove a name (only if LEASE owns it, with --lease)')
    .argument('<name>')
    .option('--lease <id>', 'only if this lease owns the name')
    .action((name: string, o, cmd: Command) =>
      ctx.run(cmd, async (client, out) => {
        const res = await client.unregister(name, o.lease !== undefined ? { lease: o.lease } : {});
        out.show(res, () =>
          fields([
            ['deleted', res.deleted],
            ['revision', res.revision],
          ]),
        );
        return EXIT_OK;
      }),
    );
}
