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

/** A host:port address another service listens on. */
export const grpcAddress = z.string().regex(/^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$/, 'must be host:port');

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

export const redisEnv = {
  REDIS_URL: urlWith('redis', 'rediss').default('redis://127.0.0.1:6379'),
  /** Prefix for every key, so tests and tenants never collide. */
  REDIS_KEY_PREFIX: z.string().regex(/^[a-z0-9_-]*$/).default('wp'),
} as const;

export const natsEnv = {
  NATS_URL: urlWith('nats', 'tls').default('nats://127.0.0.1:4222'),
  /** Prefix for subjects and stream names, so tests can run side by side. */
  NATS_SUBJECT_PREFIX: z.string().regex(/^[a-z0-9_]*$/).default(''),
  /** Copies JetStream keeps of each stream (3 on the cluster's 3-node JetStream). */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
} as const;

export const databaseEnv = {
  /** A running PostgreSQL; when unset the service uses embedded PGlite in PGLITE_DIR. */
  DATABASE_URL: urlWith('postgres', 'postgresql').optional(),
  /** Where embedded PGlite keeps its files; `memory://` keeps nothing. */
  PGLITE_DIR: z.string().default('memory://'),
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
   * durable with explicit ack and unlimited redelivery, and the streams have no max_age
   * (platform/nats.ts ensureStreams), so a consumer that was down, or one re-created with
   * deliver-all, can get events of any age. The handlers are state-idempotent (suspending a
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
