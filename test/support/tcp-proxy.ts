import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  /** 127.0.0.1 port the proxy listens on (kept across cut/restore). */
  port: number;
  /** Drops every connection and refuses new ones: the server looks down. */
  cut(): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  /**
   * Drops every connection and then accepts new ones without ever answering on them: a server
   * behind a partition (no refusal, no reply) rather than one that is down. restore() ends it.
   */
  blackhole(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy to `target` (a redis:// or other URL with host and port) that a test can cut and
 * restore, to take a real server away from one client and give it back while the server itself
 * (and every other test using it) carries on.
 */
export async function tcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const sockets = new Set<Socket>();
  let swallowing = false;
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = createServer((client) => {
    track(client);
    if (swallowing) {
      client.on('error', () => undefined);
      return;
    }
    const upstream = connect(Number(targetPort), hostname);
    track(upstream);
    client.pipe(upstream).on('error', () => client.destroy());
    upstream.pipe(client).on('error', () => upstream.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
  const port = await listen(0);
  const dropAll = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    port,
    cut: stop,
    restore: async () => {
      swallowing = false;
      dropAll();
      if (!server.listening) await listen(port);
    },
    blackhole: async () => {
      swallowing = true;
      dropAll();
      if (!server.listening) await listen(port);
    },
    close: () => ((swallowing = false), stop()),
  };
}
