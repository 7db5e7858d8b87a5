import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { TokenizationServiceClient } from '../../../../gen/wristpay/tokenization/v1/tokenization';
import type { PromiseClient } from '../../../../platform/grpc/client';
import { testClient } from '../../../../test/support/services';

/**
 * A throw-away mesh CA and certificates whose CN is a service name, made with the openssl CLI,
 * so tests can call a service over mTLS as a given identity (the CN is what allowedCallers checks).
 */
export function testPki(names: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'wp-pki-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=wristpay-test-ca', '-days', '1');
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  for (const name of names) {
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', 'leaf.ext');
  }
  const file = (f: string) => join(dir, f);
  return {
    /** Environment for a service presenting `name`'s certificate and requiring client certificates. */
    env: (name: string) => ({ GRPC_TLS: 'mtls', TLS_CA_FILE: file('ca.crt'), TLS_CERT_FILE: file(`${name}.crt`), TLS_KEY_FILE: file(`${name}.key`) }),
    /** Client credentials presenting `name`'s certificate. */
    client: (name: string): ChannelCredentials =>
      credentials.createSsl(readFileSync(file('ca.crt')), readFileSync(file(`${name}.key`)), readFileSync(file(`${name}.crt`))),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface MtlsReplica<C extends string> {
  /** A client calling as each identity (its certificate's CN is the caller identity). */
  as: Record<C, PromiseClient<TokenizationServiceClient>>;
  port: number;
  /** Closes the clients, stops the replica and removes the certificates. */
  stop(): Promise<void>;
}

/**
 * A tokenization replica listening with mTLS (certificate `tokenization` from a throw-away CA)
 * and one client per caller identity, each presenting that identity's certificate; `start` is the
 * test's own way of starting the service with extra environment. One per describe block is
 * enough: the CA and certificates cost an openssl run each.
 */
export async function mtlsReplica<C extends string>(
  start: (env: Record<string, string>) => Promise<{ port: number; stop(): Promise<void> }>,
  callers: readonly C[],
): Promise<MtlsReplica<C>> {
  const pki = testPki(['tokenization', ...callers]);
  let service: { port: number; stop(): Promise<void> };
  try {
    service = await start(pki.env('tokenization'));
  } catch (err) {
    pki.remove();
    throw err;
  }
  const as = Object.fromEntries(callers.map((name) => [name, testClient(TokenizationServiceClient, service.port, pki.client(name))])) as Record<
    C,
    PromiseClient<TokenizationServiceClient>
  >;
  return {
    as,
    port: service.port,
    async stop() {
      for (const client of Object.values<PromiseClient<TokenizationServiceClient>>(as)) client.close();
      await service.stop();
      pki.remove();
    },
  };
}
