import { Client, Metadata, status, type ChannelCredentials } from '@grpc/grpc-js';

/** How a call ended: its status, and how many messages came back (a server stream may send some first). */
export interface Outcome {
  code: status;
  details: string;
  messages: number;
}

const raw = (b: Buffer): Buffer => b;

/**
 * Calls any method of a service with request bytes as they are, so a test can send what no
 * generated client would: the serializers pass bytes through, and the answer is only the status.
 * One channel per identity; `credentials(identity)` presents its certificate.
 */
export function rawCaller(port: number, credentials: (identity: string) => ChannelCredentials) {
  const clients = new Map<string, Client>();
  const clientAs = (identity: string): Client => {
    let client = clients.get(identity);
    if (!client) clients.set(identity, (client = new Client(`localhost:${port}`, credentials(identity))));
    return client;
  };
  return {
    /**
     * One call of `path` as `identity`. A server stream is read until it ends or `deadlineMs`
     * passes (an open stream then ends DEADLINE_EXCEEDED, which is the caller's own deadline).
     */
    call(path: string, identity: string, request: Buffer, options: { stream: boolean; deadlineMs: number }): Promise<Outcome> {
      const deadline = Date.now() + options.deadlineMs;
      const client = clientAs(identity);
      return new Promise<Outcome>((resolve) => {
        if (!options.stream) {
          client.makeUnaryRequest(path, raw, raw, request, new Metadata(), { deadline }, (err) =>
            resolve({ code: err?.code ?? status.OK, details: err?.details ?? '', messages: err ? 0 : 1 }),
          );
          return;
        }
        let messages = 0;
        const call = client.makeServerStreamRequest(path, raw, raw, request, new Metadata(), { deadline });
        call.on('data', () => messages++);
        call.on('error', () => undefined);
        call.on('status', (s) => resolve({ code: s.code, details: s.details, messages }));
      });
    },
    /** grpc.health.v1 Check of the whole server: SERVING, NOT_SERVING, or the call's failure. */
    async health(identity: string): Promise<string> {
      const answer = await new Promise<{ err: { code: number; details: string } | null; bytes?: Buffer }>((resolve) =>
        clientAs(identity).makeUnaryRequest('/grpc.health.v1.Health/Check', raw, raw, Buffer.alloc(0), new Metadata(), { deadline: Date.now() + 5_000 }, (err, bytes) =>
          resolve({ err, bytes }),
        ),
      );
      if (answer.err) return `status ${answer.err.code}: ${answer.err.details}`;
      // HealthCheckResponse { ServingStatus status = 1; }: SERVING is 1, encoded 08 01.
      const serving = answer.bytes?.length === 2 && answer.bytes[0] === 0x08 ? answer.bytes[1] : 0;
      return ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'][serving ?? 0] ?? `status ${serving}`;
    },
    close(): void {
      for (const c of clients.values()) c.close();
    },
  };
}

export type RawCaller = ReturnType<typeof rawCaller>;
