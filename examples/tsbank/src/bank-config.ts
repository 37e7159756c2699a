import { CONFIG_KEY } from './keys.js';
import type { Client } from './raftkv.js';
import { type BankConfig, decodeConfig } from './records.js';

/**
 * The bank's shared settings: the first instance to start writes its own
 * (put only if the key does not exist: `prevRevision: 0`), every other
 * instance adopts what is there, so all agree on when each night falls due.
 */
export async function agreeOnConfig(client: Client, proposed: BankConfig): Promise<BankConfig> {
  try {
    await client.put(CONFIG_KEY, JSON.stringify(proposed), { prevRevision: 0 });
    return proposed;
  } catch (err) {
    const existing = (err as { code?: string; kv?: { value: string } | null }).kv;
    if ((err as { code?: string }).code !== 'compare_failed' || !existing) throw err;
    return decodeConfig(existing.value, CONFIG_KEY);
  }
}
