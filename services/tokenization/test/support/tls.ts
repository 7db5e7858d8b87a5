import { TokenizationServiceClient } from '../../../../gen/wristpay/tokenization/v1/tokenization';
import type { PromiseClient } from '../../../../platform/grpc/client';
import { testPki } from '../../../../test/support/pki';
import { testClient } from '../../../../test/support/services';

// Moved to test/support so every service's tests can call over mTLS as a given identity.
export { testPki };

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
