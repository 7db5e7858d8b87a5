import {
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
  type ClientUnaryCall,
  type Metadata,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { createServer } from 'node:net';
import { createClient } from './client';

// A one-method service with raw bytes on the wire, so the test needs no generated stubs.
const echoService = {
  whoAmI: {
    path: '/wristpay.test.v1.Echo/WhoAmI',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
} satisfies ServiceDefinition;

interface EchoClient extends Client {
  whoAmI(request: Buffer, metadata: Metadata, options: Partial<CallOptions>, callback: (error: ServiceError | null, response: Buffer) => void): ClientUnaryCall;
}
const EchoClient = makeGenericClientConstructor(echoService, 'Echo') as unknown as {
  new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): EchoClient;
  service: ServiceDefinition;
};

/** A server that answers every call with its own name: which replica served it. */
async function replica(name: string): Promise<{ port: number; server: Server }> {
  const server = new Server();
  server.addService(echoService, { whoAmI: (_call: unknown, cb: (err: null, res: Buffer) => void) => cb(null, Buffer.from(name)) });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, server };
}

/** A port nothing listens on: a replica that is down. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function served(client: ReturnType<typeof createClient<EchoClient>>, calls: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < calls; i++) {
    const name = (await client.whoAmI(Buffer.alloc(0))).toString();
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

describe('createClient with several replicas in one target', () => {
  const servers: Server[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.forceShutdown()));

  it('spreads calls over every address of an ipv4: target (round_robin)', async () => {
    const a = await replica('a');
    const b = await replica('b');
    servers.push(a.server, b.server);
    const client = createClient(EchoClient, `ipv4:127.0.0.1:${a.port},127.0.0.1:${b.port}`, { credentials: credentials.createInsecure(), deadlineMs: 5_000, retryable: [] });
    try {
      const counts = await served(client, 40);
      // Round robin alternates once both are connected; the first calls may all reach whichever connected first.
      expect(counts.get('a')).toBeGreaterThanOrEqual(10);
      expect(counts.get('b')).toBeGreaterThanOrEqual(10);
    } finally {
      client.close();
    }
  });

  it('skips an address that refuses connections, so a replica down does not fail calls', async () => {
    const a = await replica('a');
    servers.push(a.server);
    const client = createClient(EchoClient, `ipv4:127.0.0.1:${await deadPort()},127.0.0.1:${a.port}`, { credentials: credentials.createInsecure(), deadlineMs: 5_000, retryable: [] });
    try {
      expect(await served(client, 10)).toEqual(new Map([['a', 10]]));
    } finally {
      client.close();
    }
  });
});
