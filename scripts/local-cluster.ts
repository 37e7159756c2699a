/**
 * npm start: a local 3-node cluster on 127.0.0.1 as child processes, data
 * under ./.raftkv-local/, client URLs printed; Ctrl-C stops all three.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const dataRoot = join(root, '.raftkv-local');
const members = [
  { name: 'n1', client: 7379, peer: 7380 },
  { name: 'n2', client: 7381, peer: 7382 },
  { name: 'n3', client: 7383, peer: 7384 },
];
const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
mkdirSync(dataRoot, { recursive: true });

const children: ChildProcess[] = [];
for (const m of members) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'cmd', 'raftkv.ts'),
      '--name',
      m.name,
      '--data-dir',
      join(dataRoot, m.name),
      '--listen-client',
      `127.0.0.1:${m.client}`,
      '--listen-peer',
      `127.0.0.1:${m.peer}`,
      '--initial-cluster',
      initialCluster,
      '--log-level',
      process.env.RAFTKV_LOG_LEVEL ?? 'warn',
    ],
    { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  child.on('exit', (code, signal) => {
    if (!stopping) console.error(`${m.name} exited (${signal ?? code}); stopping the others`);
    void stopAll();
  });
  children.push(child);
}

console.log('raftkv local cluster: 3 members, data in .raftkv-local/');
for (const m of members) console.log(`  ${m.name}  http://127.0.0.1:${m.client}`);
console.log(
  `try: curl -X PUT http://127.0.0.1:7379/v1/kv/hello -H 'content-type: application/json' -d '{"value":"world"}'`,
);
console.log('Ctrl-C stops the cluster.');

let stopping = false;
async function stopAll(): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGTERM');
  const deadline = Date.now() + 15_000;
  while (
    children.some((c) => c.exitCode === null && c.signalCode === null) &&
    Date.now() < deadline
  ) {
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  process.exit(0);
}
process.on('SIGINT', () => void stopAll());
process.on('SIGTERM', () => void stopAll());
