/**
 * kvctl's command tree: the global flags on the program, then each command
 * group's register(). Building it has no side effects, so tests (and the
 * completion scripts) can walk the very tree a user's command line is parsed by.
 */
import { Command } from 'commander';
import { VERSION } from '../../src/server/version.js';
import * as auth from './auth.js';
import * as backup from './backup.js';
import * as cluster from './cluster.js';
import { addGlobalOptions, type CommandContext, defaultContext } from './common.js';
import * as completion from './completion.js';
import * as elect from './elect.js';
import * as kv from './kv.js';
import * as lease from './lease.js';
import * as lock from './lock.js';
import * as member from './member.js';
import * as registry from './registry.js';
import * as txn from './txn.js';
import * as watch from './watch.js';

/** The command groups, in the order `kvctl --help` lists their commands. */
const GROUPS: { register(program: Command, ctx: CommandContext): void }[] = [
  kv,
  txn,
  watch,
  cluster,
  member,
  backup,
  lease,
  registry,
  lock,
  elect,
  auth,
  completion,
];

export function buildProgram(ctx: CommandContext = defaultContext): Command {
  const program = addGlobalOptions(
    new Command('kvctl')
      .description('Command line client for raftkv (API.md over HTTP).')
      .version(VERSION, '-V, --version', 'print the version of kvctl (the raftkv release)'),
  )
    .showHelpAfterError('(run kvctl --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .addHelpText(
      'after',
      '\nValues: `put KEY -` reads the value from stdin, `put KEY --file F` from a file, byte for\n' +
        'byte (so `echo` adds a newline); it must be UTF-8 text (encode binary data, e.g. base64).\n' +
        'The same goes for `registry register NAME -` and `elect NAME -`.\n' +
        '\nGlobal options go before or after the command: `kvctl -o json get k` = `kvctl get k -o json`.\n' +
        '\n--command-timeout (KVCTL_COMMAND_TIMEOUT, default 5s) bounds a whole command, every\n' +
        'retry and failover included, so it fails fast without a quorum. For watch, lease\n' +
        'keepalive, registry register, lock and elect it bounds the start (until the stream is\n' +
        'open, the lease granted, the name registered) and the clean-up, not the time between.\n' +
        '--request-timeout bounds each attempt within it (--timeout is its old name).\n' +
        '\nExit codes: 0 ok; 1 not found, compare failed, txn not succeeded or other API error;\n' +
        '2 usage error; 3 unavailable, timeout (--command-timeout too) or connection failure.',
    );
  for (const group of GROUPS) group.register(program, ctx);
  return program;
}
