import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import { DiscardPolicy, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import type { NatsConfig } from './nats';

/**
 * Limits every stream gets, and how failing messages are retried and parked. Set from
 * platform/config.ts natsEnv; the defaults here are the same, for callers without a config
 * (tests, tools).
 */
export interface StreamLimits {
  /** Oldest message an event stream keeps (ms). */
  maxAgeMs: number;
  /** Most bytes one event stream keeps. */
  maxBytes: number;
  /** Oldest message the dead-letter stream keeps (ms). */
  deadLetterMaxAgeMs: number;
  /** Deliveries of one message before it is parked. */
  maxDeliver: number;
  /** Delay before the n-th redelivery (index n-1); the last repeats. */
  backoffMs: number[];
  /** How long a delivery may go unanswered before JetStream redelivers it (counts as a delivery). */
  ackWaitMs: number;
}

export const DEFAULT_LIMITS: StreamLimits = {
  maxAgeMs: 168 * 3_600_000,
  maxBytes: 1024 ** 3,
  deadLetterMaxAgeMs: 720 * 3_600_000,
  maxDeliver: 10,
  backoffMs: [1_000, 5_000, 30_000, 120_000, 300_000, 600_000],
  ackWaitMs: 30_000,
};

/** The limits named by a service's NATS settings (platform/config.ts natsEnv). */
export function limitsFromConfig(config: Omit<NatsConfig, 'NATS_URL' | 'NATS_SUBJECT_PREFIX' | 'NATS_STREAM_REPLICAS'>): StreamLimits {
  return {
    maxAgeMs: config.NATS_STREAM_MAX_AGE_HOURS * 3_600_000,
    maxBytes: config.NATS_STREAM_MAX_BYTES,
    deadLetterMaxAgeMs: config.NATS_DLQ_MAX_AGE_HOURS * 3_600_000,
    maxDeliver: config.NATS_MAX_DELIVER,
    backoffMs: config.NATS_RETRY_BACKOFF_MS,
    ackWaitMs: config.NATS_ACK_WAIT_SECONDS * 1_000,
  };
}

/** The area name of the dead-letter stream (`<PREFIX>_DEAD_LETTERS`, subjects `<prefix>.dlq.>`). */
export const DEAD_LETTER_AREA = 'dead_letters';
export const DEAD_LETTER_SUBJECT = 'dlq';

/**
 * The limit fields of a stream. Discard `new`: a full stream refuses the publish, so the
 * publisher (the outbox relay) keeps the event and retries, rather than JetStream silently
 * dropping the oldest events, which some consumer may not have read yet. Age still expires
 * messages whatever the discard policy: the consumer-lag alert must fire long before a week.
 */
export function limitFields(maxAgeMs: number, maxBytes: number): Pick<StreamConfig, 'max_age' | 'max_bytes' | 'discard' | 'retention' | 'storage'> {
  return { max_age: maxAgeMs * 1_000_000, max_bytes: maxBytes, discard: DiscardPolicy.New, retention: RetentionPolicy.Limits, storage: StorageType.File };
}

/** Delay before redelivering a message that has been delivered `deliveryCount` times. */
export function backoffFor(limits: Pick<StreamLimits, 'backoffMs'>, deliveryCount: number): number {
  const list = limits.backoffMs.length > 0 ? limits.backoffMs : [1_000];
  return list[Math.min(Math.max(deliveryCount, 1), list.length) - 1]!;
}

/**
 * What went wrong, as a class name and a gRPC/PostgreSQL code when the error has one, never its
 * message: messages can quote the data being handled.
 */
export function errorClass(err: unknown): string {
  if (!(err instanceof Error)) return typeof err;
  const code = (err as { code?: unknown }).code;
  const name = err.constructor?.name && err.constructor.name !== 'Object' ? err.constructor.name : err.name;
  return typeof code === 'string' || typeof code === 'number' ? `${name}:${code}` : name;
}

/** Headers a dead letter carries (the original message's own headers are kept beside them). */
export const DLQ_HEADERS = {
  stream: 'Wp-Dlq-Stream',
  consumer: 'Wp-Dlq-Consumer',
  subject: 'Wp-Dlq-Subject',
  seq: 'Wp-Dlq-Stream-Seq',
  deliveries: 'Wp-Dlq-Deliveries',
  error: 'Wp-Dlq-Error',
  parkedAt: 'Wp-Dlq-Parked-At',
} as const;

export interface DeadLetterInfo {
  stream: string;
  consumer: string;
  subject: string;
  seq: number;
  deliveries: number;
  error: string;
}

/**
 * The headers of a dead letter: the original's (trace context, event type; not its message id,
 * which would make JetStream drop a replay as a duplicate) plus where it came from and why.
 */
export function deadLetterHeaders(original: MsgHdrs | undefined, info: DeadLetterInfo, now = new Date()): MsgHdrs {
  const h = natsHeaders();
  for (const key of original?.keys() ?? []) if (key !== 'Nats-Msg-Id' && !key.startsWith('Wp-Dlq-')) for (const v of original!.values(key)) h.append(key, v);
  h.set(DLQ_HEADERS.stream, info.stream);
  h.set(DLQ_HEADERS.consumer, info.consumer);
  h.set(DLQ_HEADERS.subject, info.subject);
  h.set(DLQ_HEADERS.seq, String(info.seq));
  h.set(DLQ_HEADERS.deliveries, String(info.deliveries));
  h.set(DLQ_HEADERS.error, info.error);
  h.set(DLQ_HEADERS.parkedAt, now.toISOString());
  return h;
}

/** Reads a dead letter's headers back; undefined when the message is not a dead letter. */
export function readDeadLetter(h: MsgHdrs | undefined): (DeadLetterInfo & { parkedAt: string }) | undefined {
  const stream = h?.get(DLQ_HEADERS.stream);
  if (!h || !stream) return undefined;
  return {
    stream,
    consumer: h.get(DLQ_HEADERS.consumer),
    subject: h.get(DLQ_HEADERS.subject),
    seq: Number(h.get(DLQ_HEADERS.seq)),
    deliveries: Number(h.get(DLQ_HEADERS.deliveries)),
    error: h.get(DLQ_HEADERS.error),
    parkedAt: h.get(DLQ_HEADERS.parkedAt),
  };
}

/** The message id of a dead letter: one park per message and consumer, however many replicas try. */
export const deadLetterMsgId = (info: Pick<DeadLetterInfo, 'stream' | 'consumer' | 'seq'>) => `dlq:${info.stream}:${info.consumer}:${info.seq}`;
