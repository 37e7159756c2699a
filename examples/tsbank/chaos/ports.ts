import { createServer } from 'node:net';

const handedOut = new Set<number>();

/**
 * A free port on 127.0.0.1, drawn below Linux's ephemeral range: a port from
 * listen(0) could meanwhile become the local port of some outgoing
 * connection, and then a restarted child could not bind it again.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canListen(port)) return port;
  }
  throw new Error('no free port on 127.0.0.1 after 100 draws');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
