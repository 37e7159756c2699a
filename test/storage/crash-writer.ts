/**
 * Child process of crash.test.ts: opens the data dir, skips the workload ops
 * already on disk, then performs the rest, printing each op number to stdout
 * once its write has resolved. The parent SIGKILLs it mid-stream.
 *
 * Usage: node --import tsx crash-writer.ts <dataDir> <seed> <opsOnDisk> <maxOps>
 */
import { LevelRaftStorage } from '../../src/storage/index.js';
import { applyOp, Workload } from './workload.js';

const [dataDir, seedArg, onDiskArg, maxOpsArg] = process.argv.slice(2);
if (!dataDir || !seedArg || !onDiskArg || !maxOpsArg) {
  process.stderr.write('usage: crash-writer.ts <dataDir> <seed> <opsOnDisk> <maxOps>\n');
  process.exit(2);
}
const workload = new Workload(Number(seedArg));
const onDisk = Number(onDiskArg);
for (let i = 0; i < onDisk; i++) workload.next();

const storage = await LevelRaftStorage.open(dataDir);
process.stdout.write('open\n');
for (let i = onDisk + 1; i <= Number(maxOpsArg); i++) {
  await applyOp(storage, workload.next());
  // Pipes are synchronous on Linux: the line is with the parent before the next write starts.
  process.stdout.write(`${i}\n`);
}
await storage.close();
process.stdout.write('done\n');
