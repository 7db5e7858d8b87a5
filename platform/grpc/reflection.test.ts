import { dirname, join } from 'node:path';
import { credentials, loadPackageDefinition, ServerCredentials, type Client, type ClientDuplexStream } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { SettlementServiceService } from '../../gen/wristpay/settlement/v1/settlement';
import { eventually } from '../../test/support/eventually';
import { createLogger } from '../log';
import { contract, GrpcServer } from './server';

// Server reflection (grpcurl, Postman) is added after the bind, off the start's critical path:
// it must still answer, for the services of the mesh, once the server is up.
type ReflectionClient = Client & { ServerReflectionInfo(): ClientDuplexStream<{ listServices: string }, { listServicesResponse?: { service: Array<{ name: string }> } }> };

describe('server reflection', () => {
  it('lists the services this server serves shortly after the server listens, even before its dependencies are up', async () => {
    const server = new GrpcServer({
      service: 'settlement',
      log: createLogger('test', 'silent'),
      credentials: ServerCredentials.createInsecure(),
      maxCallMs: 5_000,
      services: [contract({ definition: SettlementServiceService, allowedCallers: { getBalance: ['wallet'] } as never })],
    });
    const port = await server.listen(0, '127.0.0.1');
    const proto = join(dirname(require.resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
    const Ctor = (loadPackageDefinition(loadSync(proto)) as any).grpc.reflection.v1.ServerReflection as new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => ReflectionClient;
    const client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure());
    const listServices = () =>
      new Promise<string[] | undefined>((resolve) => {
        const call = client.ServerReflectionInfo();
        call.on('data', (res) => resolve(res.listServicesResponse?.service.map((s: { name: string }) => s.name)));
        call.on('error', () => resolve(undefined));
        call.write({ listServices: '' });
        call.end();
      });
    try {
      const names = await eventually(listServices, 5_000, 'reflection to answer');
      // The services this server serves, not every service of the mesh's descriptor.
      expect(names).toEqual(['wristpay.settlement.v1.SettlementService']);
    } finally {
      client.close();
      await server.shutdown(100);
    }
  });
});
