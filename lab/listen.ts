// Listening and closing, as every lab server does it (DNS over TCP, the SMTP hosts, the MTA-STS policy hosts):
// each words its own listen errors, but the waiting is the same.
import net from 'node:net';

/**
 * Listens and resolves with the port (the one the OS picked when 0 was asked), or rejects with the listen
 * error for the caller to word. The error listener is removed once listening: what a listening server's
 * errors mean is the caller's to decide.
 */
export function listenOn(server: net.Server, options: net.ListenOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** Closes a TCP server or a UDP socket and waits until it is closed (one not listening resolves as well). */
export function closeServer(server: { close(done: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A TCP port free on `host` just now (listened on, then closed again), for a setting that must name one. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const probe = net.createServer();
  const port = await listenOn(probe, { host, port: 0 });
  await closeServer(probe);
  return port;
}
