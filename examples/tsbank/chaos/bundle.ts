/**
 * raftkv and TSBank bundled with esbuild once per run, so that the many
 * restarts of the chaos run start plain JavaScript (about 1 s on a busy
 * 2-core machine) rather than compiling TypeScript under tsx each time
 * (about 3 s). The bundles live in node_modules/.cache so that their
 * package imports resolve; they are removed when the run exits.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Bundles {
  raftkv: string;
  tsbank: string;
}

export function bundle(): Bundles {
  const dir = join(ROOT, 'node_modules', '.cache', `tsbank-chaos-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const build = (entry: string, name: string) => {
    const outfile = join(dir, `${name}.mjs`);
    buildSync({
      entryPoints: [join(ROOT, entry)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile,
      logLevel: 'warning',
    });
    return outfile;
  };
  return {
    raftkv: build('cmd/raftkv.ts', 'raftkv'),
    tsbank: build('examples/tsbank/src/cli.ts', 'tsbank'),
  };
}
