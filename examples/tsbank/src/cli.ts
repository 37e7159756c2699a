/**
 * One TSBank instance: npm run example:tsbank -- [flags]
 *
 *   --listen 127.0.0.1:8080            the bank's HTTP API
 *   --endpoints http://127.0.0.1:7379  raftkv client URLs, comma-separated
 *   --embedded                         run a one-member raftkv inside this process instead
 *     --data-dir ./tsbank-data           its data
 *     --raft-client 127.0.0.1:7379       its client port
 *     --raft-peer 127.0.0.1:7380         its peer port
 *   --instance NAME                    this instance's registry name (default tsbank-<pid>)
 *   --night-ms 60000                   a "night" of the interest job, in ms
 *   --interest-bp 10                   interest per night, in basis points
 *   --session-ttl 5                    lease TTL in seconds (registry, election, lock)
 *   --log-level info
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startBank } from './bank.js';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:8080' },
    endpoints: { type: 'string', default: 'http://127.0.0.1:7379' },
    embedded: { type: 'boolean', default: false },
    'data-dir': { type: 'string', default: './tsbank-data' },
    'raft-client': { type: 'string', default: '127.0.0.1:7379' },
    'raft-peer': { type: 'string', default: '127.0.0.1:7380' },
    instance: { type: 'string', default: `tsbank-${process.pid}` },
    'night-ms': { type: 'string', default: '60000' },
    'interest-bp': { type: 'string', default: '10' },
    'session-ttl': { type: 'string', default: '5' },
    'log-level': { type: 'string', default: 'info' },
  },
  strict: true,
});

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) {
    console.error(`--${name} must be a positive integer, got ${text}`);
    process.exit(2);
  }
  return n;
}

{
  const log = pino({ level: values['log-level'], base: { instance: values.instance } });
  const bank = await startBank({
    instance: values.instance,
    listen: values.listen,
    endpoints: values.endpoints.split(',').filter(Boolean),
    ...(values.embedded
      ? {
          embedded: {
            dataDir: values['data-dir'],
            listenClient: values['raft-client'],
            listenPeer: values['raft-peer'],
          },
        }
      : {}),
    config: {
      epochMs: Date.now(),
      nightMs: positiveInt('night-ms', values['night-ms']),
      rateBp: positiveInt('interest-bp', values['interest-bp']),
    },
    sessionTtlSeconds: positiveInt('session-ttl', values['session-ttl']),
    log,
  });
  console.log(`tsbank ${values.instance} on ${bank.url}`);
  const shutdown = () => {
    bank.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
