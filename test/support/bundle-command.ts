/**
 * One of the commands (cmd/*.ts) bundled with esbuild from the current
 * sources, for tests that start it as a child process many times: plain node
 * starts it in about 0.25 s of CPU, the tsx loader in about 0.6 s. Built into
 * node_modules/.cache so that its imports resolve, one file per test process
 * (and `name`), removed at exit.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Bundles cmd/<command>.ts as `<name>-<pid>.mjs`, with esbuild's `define` if given; returns its path. */
export function bundleCommand(
  command: 'raftkv' | 'kvctl',
  name: string,
  define?: Record<string, string>,
): string {
  const dir = join(ROOT, 'node_modules', '.cache', 'raftkv-test');
  mkdirSync(dir, { recursive: true });
  const outfile = join(dir, `${name}-${process.pid}.mjs`);
  buildSync({
    entryPoints: [join(ROOT, 'cmd', `${command}.ts`)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'warning',
    ...(define ? { define } : {}),
  });
  process.once('exit', () => rmSync(outfile, { force: true }));
  return outfile;
}
