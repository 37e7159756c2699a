/**
 * One TSBank instance: a raftkv client (and, embedded, a raftkv node in this
 * same process), the HTTP API, its membership in the registry and its part
 * in the interest job.
 */
import type { Logger } from 'pino';
import { buildBankApp } from './app.js';
import { agreeOnConfig } from './bank-config.js';
import { InterestJob } from './interest.js';
import { Membership } from './membership.js';
import { Client, type StartedNode, startNode } from './raftkv.js';
import type { BankConfig } from './records.js';

export interface BankOptions {
  instance: string;
  /** host:port for the bank's HTTP API. */
  listen: string;
  /** raftkv client URLs; ignored with `embedded`. */
  endpoints: string[];
  /** Run a one-member raftkv inside this process and use it. */
  embedded?: { dataDir: string; listenClient: string; listenPeer: string };
  /** Proposed to the bank; the first instance's proposal wins (bank-config.ts). */
  config: BankConfig;
  sessionTtlSeconds: number;
  log: Logger;
}

export interface RunningBank {
  url: string;
  config: BankConfig;
  stop(): Promise<void>;
}

export async function startBank(options: BankOptions): Promise<RunningBank> {
  const { instance, log } = options;
  let node: StartedNode | undefined;
  if (options.embedded) {
    node = await startNode({
      name: instance,
      dataDir: options.embedded.dataDir,
      listenClient: options.embedded.listenClient,
      listenPeer: options.embedded.listenPeer,
      logLevel: 'warn',
    });
    log.info({ raftkv: node.clientUrl }, 'embedded raftkv node started');
  }
  const endpoints = node ? [node.clientUrl] : options.endpoints;
  // Per attempt: above raftkv's own request timeout, so its 504 normally comes first.
  const client = new Client({ endpoints, timeoutMs: 6_000 });
  try {
    const config = await agreeOnConfig(client, options.config);
    const [host, port] = splitHostPort(options.listen);
    const url = `http://${host}:${port}`;
    const membership = new Membership(client, {
      instance,
      url,
      ttlSeconds: options.sessionTtlSeconds,
      log,
    });
    const interest = new InterestJob(client, membership, {
      instance,
      config,
      log,
      tickMs: Math.min(250, Math.max(10, Math.floor(config.nightMs / 4))),
    });
    const app = buildBankApp({ client, instance, membership, interest });
    await app.listen({ host, port });
    membership.start();
    interest.start();
    log.info({ url, endpoints, config }, 'tsbank instance serving');
    let stopping: Promise<void> | undefined;
    return {
      url,
      config,
      stop() {
        stopping ??= (async () => {
          await interest.stop();
          await membership.stop(); // revokes the lease: registry name, candidacy and lock go now
          await app.close();
          await client.close();
          await node?.stop();
        })();
        return stopping;
      },
    };
  } catch (err) {
    await client.close();
    await node?.stop();
    throw err;
  }
}

function splitHostPort(hostPort: string): [string, number] {
  const colon = hostPort.lastIndexOf(':');
  const port = Number(hostPort.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--listen wants host:port, got ${hostPort}`);
  return [hostPort.slice(0, colon), port];
}
