import { z } from 'zod';

/** Thrown when the environment does not describe a runnable service; its message is one line naming the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Validates `env` against `schema` once, at start. A missing or malformed variable becomes a
 * ConfigError whose message names the variable and what was expected, never its value
 * (a value may be a secret).
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const variable = issue.path.join('.') || '(environment)';
  throw new ConfigError(`invalid configuration: ${variable}: ${issue.message}`);
}

const port = z.coerce.number().int().min(0).max(65535);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** A URL with one of the given schemes, e.g. urlWith('redis', 'rediss'). */
export function urlWith(...schemes: string[]) {
  return z.string().refine(
    (value) => {
      try {
        return schemes.includes(new URL(value).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    },
    { message: `must be a ${schemes.map((s) => `${s}://`).join(' or ')} URL` },
  );
}

/** One URL or several, comma-separated, each with one of the given schemes (a server list). */
export function urlList(...schemes: string[]) {
  const one = urlWith(...schemes);
  return z.string().refine((value) => value.split(',').every((u) => one.safeParse(u.trim()).success), {
    message: `must be a ${schemes.map((s) => `${s}://`).join(' or ')} URL, or several comma-separated`,
  });
}

/**
 * Where another service listens, as a gRPC target: `host:port` or `dns:[//authority/]host:port`
 * (every address the name resolves to, e.g. a headless Service's pods), or a fixed list
 * `ipv4:10.0.0.1:50053,10.0.0.2:50053`. Clients spread calls round robin over the addresses
 * (platform/grpc/client.ts).
 */
export const grpcAddress = z.string().refine(
  (target) => {
    const validPort = (hostPort: string, pattern: RegExp) => Number(pattern.exec(hostPort)?.[2] ?? NaN) <= 65535;
    if (target.startsWith('ipv4:')) return target.slice('ipv4:'.length).split(',').every((a) => validPort(a, IPV4_PORT));
    return validPort(target.replace(/^dns:(\/\/[A-Za-z0-9.:-]*\/)?/, ''), HOST_PORT);
  },
  { message: 'must be host:port, dns:host:port, or ipv4:a.b.c.d:port[,a.b.c.d:port...]' },
);

/**
 * Comma-separated caller identities (mTLS certificate CNs), e.g. "wallet" or
 * "wallet,support-console": a method's allow-list (platform/grpc/server.ts allowedCallers).
 */
export const callerList = z
  .string()
  .regex(/^\s*[A-Za-z0-9._-]+\s*(,\s*[A-Za-z0-9._-]+\s*)*$/, 'must be one or more caller identities (certificate CNs), comma-separated')
  .transform((v) => v.split(',').map((name) => name.trim()));

/** A base64 value that decodes to exactly `bytes` bytes (keys). */
export function base64Key(bytes: number) {
  return z
    .string()
    .refine((v) => /^[A-Za-z0-9+/]+={0,2}$/.test(v) && Buffer.from(v, 'base64').length === bytes, {
      message: `must be base64 of exactly ${bytes} bytes`,
    })
    .transform((v) => Buffer.from(v, 'base64'));
}

/** Settings every service reads: gRPC listener, TLS and shutdown. */
export function serverEnv<P extends string>(portVariable: P, defaultPort: number) {
  const listen = { [portVariable]: port.default(defaultPort) } as { [K in P]: z.ZodDefault<typeof port> };
  return {
    ...listen,
    LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    /**
     * Mutual TLS unless explicitly turned off (`off`: plaintext, for unit tests only). Without a
     * client certificate there is no caller identity, and every method refuses a call without one.
     */
    GRPC_TLS: z.enum(['off', 'mtls']).default('mtls'),
    TLS_CA_FILE: z.string().optional(),
    TLS_CERT_FILE: z.string().optional(),
    TLS_KEY_FILE: z.string().optional(),
    /** Plaintext port serving only grpc.health.v1 for kubelet probes; 0 = none (local runs). */
    HEALTH_PORT: port.default(0),
    /**
     * Port of the Prometheus endpoint (GET /metrics, plaintext, all interfaces); 0 = none (tests).
     * platform/telemetry/register.ts serves it; it is here so a bad value fails the start too.
     */
    METRICS_PORT: port.default(0),
    /** Longest a call may run when the caller set no deadline. */
    GRPC_MAX_CALL_MS: z.coerce.number().int().positive().default(10_000),
    SHUTDOWN_GRACE_MS: z.coerce.number().int().positive().default(10_000),
  } as const;
}

/** The default Redis: a single node on this machine (`npm start`, tests). */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** `host:port`, a host name, IPv4 address or bracketed IPv6 address with a port. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const IPV4_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/;

/**
 * Where Redis is. Either one node, `REDIS_URL` (redis:// or rediss://, the password in the URL),
 * or a primary found through Sentinel: `REDIS_SENTINELS` (host:port of each Sentinel,
 * comma-separated), `REDIS_MASTER_NAME` (the name the Sentinels monitor it under), the data
 * nodes' password in `REDIS_PASSWORD` and the Sentinels' own, if they have one, in
 * `REDIS_SENTINEL_PASSWORD`. Neither form set: REDIS_URL's default. Services spreading this
 * must add `.superRefine(checkRedisEnv)` to their schema, which refuses mixed or half forms.
 */
export const redisEnv = {
  REDIS_URL: urlWith('redis', 'rediss').optional(),
  REDIS_SENTINELS: z
    .string()
    .refine((v) => v.split(',').every((a) => HOST_PORT.test(a.trim()) && Number(HOST_PORT.exec(a.trim())![2]) <= 65535), {
      message: 'must be one or more Sentinel addresses, host:port, comma-separated',
    })
    .transform((v) =>
      v.split(',').map((a) => {
        const [, host, p] = HOST_PORT.exec(a.trim())!;
        return { host: host!.replace(/^\[(.*)\]$/, '$1'), port: Number(p) };
      }),
    )
    .optional(),
  REDIS_MASTER_NAME: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be the name the Sentinels monitor the primary under (letters, digits, . _ -)').optional(),
  REDIS_PASSWORD: z.string().min(1, 'must not be empty (unset it for no password)').optional(),
  REDIS_SENTINEL_PASSWORD: z.string().min(1, 'must not be empty (unset it for no password)').optional(),
  /** Prefix for every key, so tests and tenants never collide. */
  REDIS_KEY_PREFIX: z.string().regex(/^[a-z0-9_-]*$/).default('wp'),
} as const;

type RedisEnv = {
  REDIS_URL?: string | undefined;
  REDIS_SENTINELS?: Array<{ host: string; port: number }> | undefined;
  REDIS_MASTER_NAME?: string | undefined;
  REDIS_PASSWORD?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
};

/** The cross-variable rules of redisEnv: one form or the other, each complete. Names the variable, never a value. */
export function checkRedisEnv(c: RedisEnv, ctx: z.RefinementCtx): void {
  const issue = (variable: string, message: string) => ctx.addIssue({ code: 'custom', path: [variable], message });
  if (c.REDIS_SENTINELS) {
    if (c.REDIS_URL) issue('REDIS_URL', 'must not be set together with REDIS_SENTINELS: use one node (REDIS_URL) or Sentinel (REDIS_SENTINELS + REDIS_MASTER_NAME)');
    else if (!c.REDIS_MASTER_NAME) issue('REDIS_MASTER_NAME', 'is required with REDIS_SENTINELS: the name the Sentinels monitor the primary under');
  } else {
    if (c.REDIS_MASTER_NAME) issue('REDIS_MASTER_NAME', 'is only used with REDIS_SENTINELS, which is not set');
    else if (c.REDIS_PASSWORD) issue('REDIS_PASSWORD', 'is only used with REDIS_SENTINELS; with REDIS_URL put the password in the URL');
    else if (c.REDIS_SENTINEL_PASSWORD) issue('REDIS_SENTINEL_PASSWORD', 'is only used with REDIS_SENTINELS, which is not set');
  }
}

export const natsEnv = {
  /**
   * One NATS server, or several comma-separated (the nodes of a cluster): the client connects to
   * one of them and moves to another when it goes away.
   */
  NATS_URL: urlList('nats', 'tls').default('nats://127.0.0.1:4222'),
  /** Prefix for subjects and stream names, so tests can run side by side. */
  NATS_SUBJECT_PREFIX: z.string().regex(/^[a-z0-9_]*$/).default(''),
  /** Copies JetStream keeps of each stream (3 on the cluster's 3-node JetStream). */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /**
   * Oldest message an event stream keeps (hours). Consumers must catch up within it, so it is a
   * week: far longer than any outage the consumer-lag alert lets pass, and shorter than
   * RETENTION_PROCESSED_EVENTS_DAYS, so no event can come back after its dedupe key is gone.
   */
  NATS_STREAM_MAX_AGE_HOURS: z.coerce.number().int().positive().default(168),
  /**
   * Most bytes an event stream keeps. Full streams refuse new messages (discard `new`): the
   * outbox keeps the event and retries, so nothing is dropped silently; alert well before.
   */
  NATS_STREAM_MAX_BYTES: z.coerce.number().int().positive().default(1024 ** 3),
  /** Oldest dead letter kept (hours): long enough for someone to look at and replay it. */
  NATS_DLQ_MAX_AGE_HOURS: z.coerce.number().int().positive().default(24 * 30),
  /** Deliveries of one message before it is parked on the dead-letter stream. */
  NATS_MAX_DELIVER: z.coerce.number().int().min(2).max(100).default(10),
  /**
   * Delays (ms) before the 1st, 2nd, ... redelivery of a message whose handler failed; the last
   * repeats. The default spreads 10 deliveries over about 48 minutes, so a dependency outage
   * shorter than that parks nothing.
   */
  NATS_RETRY_BACKOFF_MS: z
    .string()
    .regex(/^\s*\d+\s*(,\s*\d+\s*)*$/, 'must be comma-separated milliseconds, e.g. 1000,5000,30000')
    .default('1000,5000,30000,120000,300000,600000')
    .transform((v) => v.split(',').map((ms) => Number(ms.trim()))),
  /**
   * Seconds a delivery may go unacknowledged before JetStream redelivers it; longer than any
   * handler takes. A message whose last delivery times out is parked from JetStream's advisory.
   */
  NATS_ACK_WAIT_SECONDS: z.coerce.number().int().min(1).default(30),
} as const;

export const databaseEnv = {
  /** A running PostgreSQL; when unset the service uses embedded PGlite in PGLITE_DIR. */
  DATABASE_URL: urlWith('postgres', 'postgresql').optional(),
  /** Where embedded PGlite keeps its files; `memory://` keeps nothing. */
  PGLITE_DIR: z.string().default('memory://'),
  /**
   * Apply pending migrations at start (local runs, tests, dev). Prod sets false: the migrate
   * Job (`npm run migrate -- <service>`) runs them before the rollout, and a service finding its
   * schema behind refuses to start, naming the first missing migration.
   */
  MIGRATE_ON_START: bool.default(true),
} as const;

/**
 * How long a database service keeps the rows of its tables that only grow, and how often it
 * prunes them (platform/retention.ts). Every service with a database spreads this next to
 * databaseEnv and passes the parsed values to `platformRetention` / `processedEventsRetention`.
 */
export const retentionEnv = {
  /**
   * Days an idempotency key and its first answer are kept. A retry that comes after its key is
   * gone runs as a new call (and may move money again), so keys must outlive every client's
   * retries: less than a day is refused.
   */
  RETENTION_IDEMPOTENCY_DAYS: z.coerce.number().int().min(1, 'must be at least 1 (days): idempotency keys must outlive every client retry').default(30),
  /** Days an outbox row is kept after the relay published it; unpublished rows are never pruned. */
  RETENTION_OUTBOX_DAYS: z.coerce.number().int().min(1, 'must be at least 1 (days)').default(7),
  /**
   * Days a consumed event's dedupe key (processed_events) is kept. It should not be shorter than
   * the longest time after which JetStream can still deliver that event again: consumers are
   * durable with explicit ack and NATS_MAX_DELIVER deliveries, and the streams keep events for
   * NATS_STREAM_MAX_AGE_HOURS (a week by default: keep this longer), so a consumer that was down,
   * or one re-created with deliver-all, can get events up to that age. The handlers are state-idempotent (suspending a
   * suspended token changes nothing), so a replay past the horizon is not a double effect, but
   * the dedupe key is the second line of defence: keep the default generous.
   */
  RETENTION_PROCESSED_EVENTS_DAYS: z.coerce.number().int().min(1, 'must be at least 1 (days)').default(30),
  /** Seconds between pruning runs (each run deletes in bounded batches until nothing is due). */
  RETENTION_INTERVAL_SECONDS: z.coerce.number().int().positive().default(3600),
} as const;

export const env = { port, bool };

/** Options for talking to another service over gRPC (deadline per call). */
export const clientEnv = {
  GRPC_CLIENT_DEADLINE_MS: z.coerce.number().int().positive().default(5_000),
} as const;
