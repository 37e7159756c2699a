/**
 * kvctl and raftkv as commands (README "Quick start"): after `npm ci` in a
 * checkout, `npx kvctl` and `npx raftkv` run this checkout's TypeScript
 * (scripts/link-bins.mjs, the prepare script); the packed package names the
 * compiled files as its bins.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import t from 'tap';
import { VERSION } from '../../src/server/version.js';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;

for (const name of ['kvctl', 'raftkv']) {
  t.test(`npx ${name} runs this checkout's ${name}`, async (t) => {
    const shim = `${root}node_modules/.bin/${name}`;
    t.ok(existsSync(shim), `${shim} exists (npm ci's prepare script writes it)`);
    const { stdout } = await run('npx', ['--no-install', name, '--version'], {
      cwd: `${root}src`,
      timeout: 30_000,
    });
    t.equal(stdout, `${VERSION}\n`, 'from a subdirectory too');
  });
}

t.test('the packed package names compiled bins that keep their shebang', async (t) => {
  const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
    bin: Record<string, string>;
    files: string[];
    scripts: Record<string, string>;
  };
  t.strictSame(pkg.bin, { raftkv: 'dist/cmd/raftkv.js', kvctl: 'dist/cmd/kvctl.js' });
  t.ok(pkg.files.includes('dist/cmd'), 'dist/cmd is packed');
  t.match(pkg.scripts.prepack ?? '', /build:dist/, 'npm pack builds dist first');
  for (const name of Object.keys(pkg.bin)) {
    const source = readFileSync(`${root}cmd/${name}.ts`, 'utf8');
    t.ok(source.startsWith('#!/usr/bin/env node\n'), `cmd/${name}.ts starts with a shebang`);
  }
});
