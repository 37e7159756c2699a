import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';

// DESIGN.md "Layers": arrows point down only, and the core layers stay pure.
const root = join(import.meta.dirname, '..', '..');

/** Which src/ layers each layer may import (besides itself). */
const allowed: Record<string, string[]> = {
  raft: [],
  kv: [],
  storage: ['raft'],
  // TLS material and dialing/serving with it: used by the transport, the server and the API.
  tls: [],
  transport: ['raft', 'tls'],
  server: ['raft', 'kv', 'storage', 'transport', 'tls'],
  api: ['server', 'kv', 'raft', 'tls'],
  client: ['api'],
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

function imports(source: string): string[] {
  const specs: string[] = [];
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of source.matchAll(re)) specs.push((m[1] ?? m[2])!);
  return specs;
}

function layerOf(file: string): string | undefined {
  const rel = relative(join(root, 'src'), file);
  if (rel.startsWith('..')) return undefined;
  const first = rel.split(/[\\/]/)[0]!;
  return first.endsWith('.ts') ? undefined : first;
}

const files = sourceFiles(join(root, 'src'));

t.test('src/ layers import only the layers below them', async (t) => {
  const violations: string[] = [];
  for (const file of files) {
    const layer = layerOf(file);
    if (!layer || !(layer in allowed)) continue;
    for (const spec of imports(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = layerOf(join(file, '..', spec));
      if (target && target !== layer && !allowed[layer]!.includes(target)) {
        violations.push(`${relative(root, file)} imports ${spec} (${layer} → ${target})`);
      }
    }
  }
  t.same(violations, [], 'no upward or sideways imports');
});

t.test('src/raft and src/kv are pure: no I/O, clocks, timers or ambient randomness', async (t) => {
  const violations: string[] = [];
  const forbidden = [
    /\bDate\.now\b/,
    /\bMath\.random\b/,
    /\bsetTimeout\b/,
    /\bsetInterval\b/,
    /\bsetImmediate\b/,
    /\bperformance\.now\b/,
    /\bprocess\./,
  ];
  for (const file of files) {
    const layer = layerOf(file);
    if (layer !== 'raft' && layer !== 'kv') continue;
    const source = readFileSync(file, 'utf8');
    for (const spec of imports(source)) {
      if (!spec.startsWith('.')) violations.push(`${relative(root, file)} imports package ${spec}`);
    }
    for (const re of forbidden)
      if (re.test(source)) violations.push(`${relative(root, file)} uses ${re.source}`);
  }
  t.same(violations, [], 'pure core');
});
