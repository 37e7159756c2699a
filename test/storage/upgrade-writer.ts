/**
 * Child process of upgrade-crash.test.ts: opens a data dir of an older format,
 * which upgrades it, printing the number of kv records re-sealed after each
 * synced batch; the parent SIGKILLs it half way.
 *
 * Usage: node --import tsx upgrade-writer.ts <dataDir> <batchMaxBytes>
 */
import { LevelRaftStorage } from '../../src/storage/index.js';

const [dataDir, batchArg] = process.argv.slice(2);
if (!dataDir || !batchArg) {
  process.stderr.write('usage: upgrade-writer.ts <dataDir> <batchMaxBytes>\n');
  process.exit(2);
}
const storage = await LevelRaftStorage.open(dataDir, {
  kvResealBatchMaxBytes: Number(batchArg),
  // Pipes are synchronous on Linux: the line is with the parent before the next batch starts.
  onKvResealBatch: (n) => process.stdout.write(`${n}\n`),
});
await storage.close();
process.stdout.write('done\n');
