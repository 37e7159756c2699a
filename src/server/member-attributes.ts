import type { Logger } from 'pino';
import type { NodeCore } from './node-core.js';
import type { ServerCommand } from './server-commands.js';

export interface AttributePublisherOptions {
  advertiseClientUrl: string;
  version: string;
  /** Proposes a server command here or at the leader. */
  propose: (cmd: ServerCommand) => Promise<unknown>;
  log: Logger;
  /** Retry every this many ticks until the member table shows them. */
  retryTicks: number;
}

/**
 * Members announce their client URL and raftkv version through the log, so
 * every member's table shows them (the cluster version is computed from it).
 * Best effort: published when a leader is known, retried from the tick loop
 * until the table shows them.
 */
export function attachAttributePublisher(core: NodeCore, options: AttributePublisherOptions): void {
  let publishing = false;
  let ticks = 0;

  const publish = () => {
    const me = core.members.get(core.id);
    const url = options.advertiseClientUrl;
    if (!me || publishing || core.stopping) return;
    if (me.clientUrls.includes(url) && me.version === options.version) return;
    publishing = true;
    void options
      .propose({
        type: 'memberAttributes',
        id: core.id,
        clientUrls: [url],
        version: options.version,
      })
      .catch((err) =>
        options.log.debug({ err }, 'publishing the member attributes failed; will retry'),
      )
      .finally(() => {
        publishing = false;
      });
  };

  core.on('tick', () => {
    if (++ticks % options.retryTicks === 0 && core.leader !== undefined) publish();
  });
  core.on('softState', (lead) => {
    if (lead !== '' && core.leader !== undefined) publish();
  });
}
