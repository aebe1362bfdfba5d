// A TCP proxy for fault-injection tests: forwards 127.0.0.1:<port> to a target until told to stall; then it
// forwards nothing in either direction and connects nothing, yet keeps every connection open (a network that
// silently stops delivering, as a broken switch or a partition does), and resumes where it was.
import net from 'node:net';

export interface StallProxy {
  port: number;
  /** Stops forwarding on every connection, existing and new, until resume(). */
  stall(): void;
  resume(): void;
  /** Stalls for `ms`, then resumes. */
  stallFor(ms: number): Promise<void>;
  readonly connections: number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
  /** Bytes read from the client while stalled or before the upstream connected. */
  pending: Buffer[];
  /** Bytes read from the upstream while stalled. */
  pendingDown: Buffer[];
}

export async function startStallProxy(target: { host?: string; port: number }): Promise<StallProxy> {
  const host = target.host ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  let stalled = false;

  const connectUpstream = (p: Pair) => {
    const up = net.connect(target.port, host);
    p.upstream = up;
    up.setNoDelay(true);
    up.on('connect', () => {
      for (const b of p.pending.splice(0)) up.write(b);
    });
    up.on('data', (d) => {
      if (stalled) {
        p.pendingDown.push(d);
        return;
      }
      if (!p.client.write(d)) {
        up.pause();
        p.client.once('drain', () => !stalled && up.resume());
      }
    });
    const end = () => {
      p.client.destroy();
      up.destroy();
      pairs.delete(p);
    };
    up.on('error', end);
    up.on('close', end);
  };

  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const p: Pair = { client, upstream: null, pending: [], pendingDown: [] };
    pairs.add(p);
    client.on('data', (d) => {
      const up = p.upstream;
      if (!up || up.connecting || stalled) {
        p.pending.push(d);
        return;
      }
      if (!up.write(d)) {
        client.pause();
        up.once('drain', () => !stalled && client.resume());
      }
    });
    const end = () => {
      client.destroy();
      p.upstream?.destroy();
      pairs.delete(p);
    };
    client.on('error', end);
    client.on('close', end);
    if (stalled) client.pause(); // held: connected later, on resume
    else connectUpstream(p);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  const proxy: StallProxy = {
    port,
    stall() {
      stalled = true;
      for (const p of pairs) {
        p.client.pause();
        p.upstream?.pause();
      }
    },
    resume() {
      stalled = false;
      for (const p of pairs) {
        if (!p.upstream) connectUpstream(p);
        else if (!p.upstream.connecting) for (const b of p.pending.splice(0)) p.upstream.write(b);
        for (const b of p.pendingDown.splice(0)) p.client.write(b);
        p.client.resume();
        p.upstream?.resume();
      }
    },
    async stallFor(ms) {
      proxy.stall();
      await new Promise((r) => setTimeout(r, ms));
      proxy.resume();
    },
    get connections() {
      return pairs.size;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream?.destroy();
      }
      pairs.clear();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return proxy;
}
