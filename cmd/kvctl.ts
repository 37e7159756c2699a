#!/usr/bin/env node
/**
 * kvctl — the command line client. Parses flags, calls src/client, prints.
 * The commands live in cmd/kvctl/, one module per group (program.ts lists
 * them); the output format is chosen once, in cmd/kvctl/printer.ts.
 *
 * Exit codes: 0 ok; 1 not found, compare failed, txn not succeeded, or any
 * other API error; 2 usage error; 3 unavailable, timeout (including
 * --command-timeout) or connection failure (and: the lease of `registry
 * register`, `lease keepalive`, `elect` or a bare `lock` was lost).
 * `lock NAME -- command` exits with the command's code; 130 when `lock` is
 * interrupted while waiting.
 */
import { CommanderError } from 'commander';
import { EXIT_OK, EXIT_USAGE, report } from './kvctl/common.js';
import { buildProgram } from './kvctl/program.js';

async function main(argv: string[]): Promise<number> {
  // `kvctl ls | head`: a closed pipe is the reader's choice, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    return report(err, 'table');
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
}

process.exitCode = await main(process.argv);
