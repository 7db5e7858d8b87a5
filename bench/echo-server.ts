/**
 * The floor under every gRPC hop of the mesh: a unary echo with no work in it, served with the
 * services' own mTLS server credentials (platform/grpc/credentials.ts) in a process of its own,
 * as each service is. Started by bench/floors.ts (child_process.fork): TLS_CA_FILE, TLS_CERT_FILE
 * and TLS_KEY_FILE name the certificates; it answers the parent with `{ port }` once listening
 * and stops when the parent disconnects.
 */
import { Server, type ServiceDefinition, type UntypedHandleCall } from '@grpc/grpc-js';
import { serverCredentials } from '../platform/grpc/credentials';

const identity = (b: Buffer) => b;

/** One unary method whose request and response are raw bytes (no protobuf), for the echo floor. */
export const ECHO_SERVICE = {
  echo: {
    path: '/wristpay.bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} satisfies ServiceDefinition;

async function main(): Promise<void> {
  const server = new Server();
  const echo: UntypedHandleCall = (call: { request: Buffer }, done: (err: null, value: Buffer) => void) => done(null, call.request);
  server.addService(ECHO_SERVICE, { echo });
  const credentials = serverCredentials({ GRPC_TLS: 'mtls', TLS_CA_FILE: process.env.TLS_CA_FILE, TLS_CERT_FILE: process.env.TLS_CERT_FILE, TLS_KEY_FILE: process.env.TLS_KEY_FILE });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  process.send!({ port });
  process.on('disconnect', () => server.forceShutdown());
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`echo-server: ${err.message}\n`);
    process.exit(1);
  });
}
