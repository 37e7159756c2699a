/**
 * Whether the listen addresses can be bound, checked before the data dir is
 * touched: a port in use must not leave a freshly initialized data dir behind.
 * (A port taken between this check and the real listen still fails the
 * start, only later.)
 */
import net from 'node:net';
import { parseHostPort } from './config.js';
import { ServerError } from './errors.js';

/** Explains a listen error in one line: which flag, which address, what to do. */
export function listenErrorMessage(flag: string, address: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EADDRINUSE':
      return `${flag} ${address}: the address is in use (another raftkv or another program listens there): stop it or choose another port`;
    case 'EADDRNOTAVAIL':
      return `${flag} ${address}: no network interface of this machine has that address`;
    case 'EACCES':
      return `${flag} ${address}: not permitted to listen there (ports below 1024 need privileges)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${flag} ${address}: the host name does not resolve`;
    default:
      return `${flag} ${address}: cannot listen (${(err as Error).message})`;
  }
}

function tryListen(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/** Throws ServerError `invalid_request` naming the first flag whose address cannot be bound. */
export async function checkListenAddresses(
  addresses: { flag: string; value: string }[],
): Promise<void> {
  for (const { flag, value } of addresses) {
    const { host, port } = parseHostPort(value, flag);
    if (port === 0) continue; // any free port will do
    try {
      await tryListen(host, port);
    } catch (err) {
      throw new ServerError('invalid_request', listenErrorMessage(flag, value, err));
    }
  }
}
