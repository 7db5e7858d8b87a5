import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { testPki } from '../../test/support/pki';
import { rememberPeerCertificates } from './peer-certificate';

describe('rememberPeerCertificates', () => {
  const pki = testPki(['server', 'alice']);
  const tls = (name: string) => {
    const env = pki.env(name);
    return { ca: readFileSync(env.TLS_CA_FILE), cert: readFileSync(env.TLS_CERT_FILE), key: readFileSync(env.TLS_KEY_FILE) };
  };
  afterAll(() => pki.remove());

  /** A mutual-TLS connection pinned to `version`: the server side of it, with the client's certificate. */
  async function serverSide(version: 'TLSv1.2' | 'TLSv1.3') {
    const server = createServer({ ...tls('server'), requestCert: true, rejectUnauthorized: true, minVersion: version, maxVersion: version });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'secureConnection') as Promise<[TLSSocket]>;
    const { port } = server.address() as { port: number };
    const client = connect({ host: '127.0.0.1', port, ...tls('alice'), servername: 'localhost', minVersion: version, maxVersion: version });
    const [socket] = await accepted;
    return { socket, close: () => (client.destroy(), socket.destroy(), server.close()) };
  }

  beforeAll(() => rememberPeerCertificates());

  it('converts a TLS 1.3 peer certificate once per connection and keeps answering the same identity', async () => {
    const { socket, close } = await serverSide('TLSv1.3');
    try {
      const first = socket.getPeerCertificate();
      expect(first.subject.CN).toBe('alice');
      expect(socket.getPeerCertificate()).toBe(first);
      // The chain (detailed) is not what is remembered: Node builds it as before.
      const detailed = socket.getPeerCertificate(true);
      expect(detailed).not.toBe(first);
      expect(detailed.subject.CN).toBe('alice');
    } finally {
      close();
    }
  });

  it('leaves TLS 1.2 connections (which may renegotiate) to Node: a new object each time', async () => {
    const { socket, close } = await serverSide('TLSv1.2');
    try {
      const first = socket.getPeerCertificate();
      expect(first.subject.CN).toBe('alice');
      expect(socket.getPeerCertificate()).not.toBe(first);
    } finally {
      close();
    }
  });

  it('remembers per connection: another connection answers its own peer', async () => {
    const a = await serverSide('TLSv1.3');
    const b = await serverSide('TLSv1.3');
    try {
      expect(a.socket.getPeerCertificate()).not.toBe(b.socket.getPeerCertificate());
    } finally {
      a.close();
      b.close();
    }
  });
});
