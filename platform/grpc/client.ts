import {
  Metadata,
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

type ServerStreamingMethod<Req, Res> = (request: Req, metadata?: Metadata, options?: Partial<CallOptions>) => ClientReadableStream<Res>;

/** Options of one server-streaming call made through a PromiseClient. */
export interface StreamCallOptions {
  /** None by default: a stream lasts until the caller stops reading (or `signal` aborts). */
  deadlineMs?: number;
  metadata?: Metadata;
  /** Cancels the call; the iteration then throws the CANCELLED status. */
  signal?: AbortSignal;
}

/**
 * Promise form of a ts-proto grpc-js client: `await client.getSession({ deviceId })`; a
 * server-streaming method is an async iterable: `for await (const m of client.streamAlerts(req))`.
 * The call starts at the first `next()` (the first turn of the loop); leaving the loop (break,
 * return, throw) cancels it; a status other than OK is thrown. Streams get no deadline unless
 * `deadlineMs` is given, and the channel never retries them: resuming is the caller's (e.g. from
 * the last sequence it saw).
 */
export type PromiseClient<C> = {
  [K in keyof C as C[K] extends ServerStreamingMethod<any, any> | UnaryMethod<any, any> ? K : never]: C[K] extends ServerStreamingMethod<infer Req, infer Res>
    ? (request: Req, options?: StreamCallOptions) => AsyncGenerator<Res, void, undefined>
    : C[K] extends UnaryMethod<infer Req, infer Res>
      ? (request: Req, options?: { deadlineMs?: number; metadata?: Metadata }) => Promise<Res>
      : never;
} & { close(): void; raw: C };

type ClientConstructor<C> = {
  new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): C;
  service: ServiceDefinition;
};

export interface ClientFactoryOptions {
  credentials: ChannelCredentials;
  /** Deadline for each call unless the call sets its own. */
  deadlineMs: number;
  /**
   * Methods (ts-proto names, e.g. 'getSession') safe to retry on UNAVAILABLE: reads, and
   * mutations that carry an idempotency key. Others are never retried by the channel.
   */
  retryable: readonly string[];
  /** Name to check on the server certificate when the address host differs (mTLS). */
  serverName?: string;
}

/**
 * Creates a client whose every call has a deadline and whose listed methods are retried by the
 * channel on UNAVAILABLE (gRPC's own retry policy, with backoff and a cap of 3 attempts).
 * Calls are spread round robin over every address the target resolves to: a `dns:` name with
 * several A records (a headless Service) or a list such as `ipv4:127.0.0.1:5001,127.0.0.1:5002`;
 * an address that refuses connections is skipped.
 */
export function createClient<C extends Client>(Ctor: ClientConstructor<C>, address: string, options: ClientFactoryOptions): PromiseClient<C> {
  const methods = Object.entries(Ctor.service);
  const retryNames = methods
    .filter(([name]) => options.retryable.includes(name))
    .map(([, def]) => {
      const [, service, method] = def.path.split('/');
      return { service, method };
    });
  const serviceConfig = {
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig: retryNames.length
      ? [
          {
            name: retryNames,
            retryPolicy: { maxAttempts: 3, initialBackoff: '0.05s', maxBackoff: '0.5s', backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] },
          },
        ]
      : [],
  };
  const channelOptions: Partial<ClientOptions> = {
    'grpc.service_config': JSON.stringify(serviceConfig),
    'grpc.keepalive_time_ms': 30_000,
    // A replica that restarts is back within a few seconds: reconnect attempts every 100 ms to 1 s
    // (grpc-js's default starts at 1 s and grows to 2 min) put calls back on it within a second of
    // it listening, not several; a refused attempt costs one SYN on the loopback or the cluster network.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1_000,
    ...(options.serverName ? { 'grpc.ssl_target_name_override': options.serverName } : {}),
  };
  const raw = new Ctor(address, options.credentials, channelOptions);
  const wrapped: Record<string, unknown> = { raw, close: () => raw.close() };
  for (const [name, def] of methods) {
    if (def.responseStream && !def.requestStream) {
      const method = (raw as unknown as Record<string, ServerStreamingMethod<unknown, unknown>>)[name]!.bind(raw);
      wrapped[name] = (request: unknown, callOptions: StreamCallOptions = {}) => readStream(method, request, callOptions);
      continue;
    }
    const method = (raw as unknown as Record<string, UnaryMethod<unknown, unknown>>)[name]!.bind(raw);
    wrapped[name] = (request: unknown, callOptions?: { deadlineMs?: number; metadata?: Metadata }) =>
      new Promise((resolve, reject) => {
        const deadline = new Date(Date.now() + (callOptions?.deadlineMs ?? options.deadlineMs));
        method(request, callOptions?.metadata ?? new Metadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
      });
  }
  return wrapped as PromiseClient<C>;
}

async function* readStream<Req, Res>(method: ServerStreamingMethod<Req, Res>, request: Req, options: StreamCallOptions): AsyncGenerator<Res, void, undefined> {
  const deadline = options.deadlineMs === undefined ? Infinity : new Date(Date.now() + options.deadlineMs);
  const call = method(request, options.metadata ?? new Metadata(), { deadline });
  const cancel = () => call.cancel();
  if (options.signal?.aborted) cancel();
  options.signal?.addEventListener('abort', cancel, { once: true });
  try {
    for await (const message of call as AsyncIterable<Res>) yield message;
  } finally {
    options.signal?.removeEventListener('abort', cancel);
    // A no-op when the stream has ended; otherwise the caller left the loop early.
    call.cancel();
  }
}
