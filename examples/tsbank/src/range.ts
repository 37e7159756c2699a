import type { Client, KeyValue } from './raftkv.js';

const PAGE_SIZE = 1_000;

/**
 * Every key under `prefix` at one revision: the first page is a linearizable
 * read, which fixes the revision; later pages (if any) read at that revision.
 */
export async function readRange(
  client: Client,
  prefix: string,
): Promise<{ kvs: KeyValue[]; revision: number }> {
  let page = await client.list({ prefix, limit: PAGE_SIZE });
  const revision = page.revision;
  const kvs = [...page.kvs];
  while (page.more && page.kvs.length > 0) {
    page = await client.list({
      prefix,
      limit: PAGE_SIZE,
      after: page.kvs[page.kvs.length - 1]!.key,
      revision,
    });
    kvs.push(...page.kvs);
  }
  return { kvs, revision };
}
