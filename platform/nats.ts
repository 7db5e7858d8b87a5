import {
  context as otelContext,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { Event } from '../gen/wristpay/events/v1/events';
import {
  backoffFor,
  DEAD_LETTER_AREA,
  DEAD_LETTER_SUBJECT,
  deadLetterHeaders,
  deadLetterMsgId,
  DEFAULT_LIMITS,
  errorClass,
  limitFields,
  limitsFromConfig,
  type DeadLetterInfo,
  type StreamLimits,
} from './dead-letters';
import { decodeEvent, encodeEvent, STREAM_AREAS, type StreamArea } from './events';
import type { Logger } from './log';
import { dependency } from './service';
import { ATTR } from './telemetry/attributes';
import { METRIC, observeGauges, recordParked, recordRedelivery } from './telemetry/metrics';

const tracer = trace.getTracer('wristpay.nats');

const headerSetter: TextMapSetter<MsgHdrs> = { set: (h, k, v) => h.set(k, v) };
const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, k) => h?.get(k) || undefined,
  keys: (h) => (h ? h.keys() : []),
};

/** JetStream's API error code for "stream name already in use with a different configuration". */
const STREAM_NAME_IN_USE = 10058;

/** The NATS settings every service reads (platform/config.ts natsEnv). */
export interface NatsConfig {
  NATS_URL: string;
  NATS_SUBJECT_PREFIX: string;
  NATS_STREAM_REPLICAS: number;
  NATS_STREAM_MAX_AGE_HOURS: number;
  NATS_STREAM_MAX_BYTES: number;
  NATS_DLQ_MAX_AGE_HOURS: number;
  NATS_MAX_DELIVER: number;
  NATS_RETRY_BACKOFF_MS: number[];
  NATS_ACK_WAIT_SECONDS: number;
}

/** Connects a service to JetStream from its config, waiting (platform/service.ts dependency) until it answers. */
export function connectEventBus(config: NatsConfig, source: string, log: Logger): Promise<EventBus> {
  return dependency(log, 'NATS JetStream', 'NATS_URL', () =>
    EventBus.connect({ url: config.NATS_URL, prefix: config.NATS_SUBJECT_PREFIX, source, log, replicas: config.NATS_STREAM_REPLICAS, limits: limitsFromConfig(config) }),
  );
}

/** A carrier of trace context that can be stored (outbox rows) and turned into NATS headers later. */
export type TraceCarrier = Record<string, string>;

/** Captures the active trace context as a plain object, e.g. to store beside an outbox row. */
export function captureTraceContext(ctx: Context = otelContext.active()): TraceCarrier {
  const carrier: TraceCarrier = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

/** JetStream access for one service: subject prefixing, streams, publish and durable consumers. */
/** The durable consumeEach runs `type` on for the consumer named `durable`: `<durable>-<type with dots as dashes>`. */
export const perTypeDurable = (durable: string, type: string): string => `${durable}-${type.replace(/\./g, '-')}`;

export class EventBus {
  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    private readonly prefix: string,
    private readonly source: string,
    private readonly log: Logger,
    private readonly replicas: number,
    readonly limits: StreamLimits,
  ) {}

  /**
   * Connects and makes sure every stream exists with this bus's limits (creating is idempotent
   * across replicas). `url` may list several servers, comma-separated (a cluster's nodes): the
   * client picks one and, when it goes away, reconnects to another (and to those the cluster
   * tells it about).
   */
  static async connect(options: { url: string; prefix: string; source: string; log: Logger; replicas?: number; limits?: Partial<StreamLimits> }): Promise<EventBus> {
    // noAsyncTraces: no Error (with its stack) built in advance for every request, JetStream's
    // publish included, just to point at the caller should it time out: a cost per event for a
    // stack the error's subject and our logs already locate.
    const nc = await connect({ servers: natsServers(options.url), name: options.source, maxReconnectAttempts: -1, noAsyncTraces: true });
    const bus = new EventBus(nc, jetstream(nc), options.prefix, options.source, options.log, options.replicas ?? 1, { ...DEFAULT_LIMITS, ...options.limits });
    try {
      await bus.ensureStreams();
    } catch (err) {
      // JetStream not ready yet (a cluster without a meta leader): the caller retries with a new connection.
      await nc.close().catch(() => undefined);
      throw err;
    }
    return bus;
  }

  subject(type: string): string {
    return this.prefix ? `${this.prefix}.${type}` : type;
  }

  streamName(area: StreamArea | typeof DEAD_LETTER_AREA): string {
    return `${this.prefix ? `${this.prefix.toUpperCase()}_` : ''}${area.toUpperCase()}`;
  }

  /** The subject a message of `stream` that `consumer` could not process is parked on. */
  deadLetterSubject(stream: string, consumer: string): string {
    return this.subject(`${DEAD_LETTER_SUBJECT}.${stream}.${consumer}`);
  }

  /**
   * Makes sure every event stream and the dead-letter stream exist with this bus's limits.
   * Creating is idempotent across replicas; an existing stream whose age, size or discard
   * policy differs is updated to them (its replica count is left as it was created: see
   * k8s/README.md, JetStream replicas).
   */
  async ensureStreams(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    const wanted = [
      ...STREAM_AREAS.map((area) => ({ name: this.streamName(area), subjects: [this.subject(`${area}.>`)], ...limitFields(this.limits.maxAgeMs, this.limits.maxBytes) })),
      // Dead letters are few and must stay until someone looks: a longer age, the same size cap.
      { name: this.streamName(DEAD_LETTER_AREA), subjects: [this.subject(`${DEAD_LETTER_SUBJECT}.>`)], ...limitFields(this.limits.deadLetterMaxAgeMs, this.limits.maxBytes) },
    ];
    for (const limits of wanted) {
      const config = { ...limits, duplicate_window: 2 * 60 * 1_000_000_000, num_replicas: this.replicas };
      let existing;
      try {
        existing = (await jsm.streams.info(config.name)).config;
      } catch (err) {
        if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
        try {
          await jsm.streams.add(config);
          continue;
        } catch (addErr) {
          // Another replica created it between our info and add (10058, name in use): that is
          // fine. Anything else (e.g. insufficient storage to reserve max_bytes) is the error.
          if (!(addErr instanceof JetStreamApiError) || addErr.code !== STREAM_NAME_IN_USE) throw addErr;
          existing = (await jsm.streams.info(config.name)).config;
        }
      }
      if (existing.max_age !== config.max_age || existing.max_bytes !== config.max_bytes || existing.discard !== config.discard) {
        await jsm.streams.update(config.name, { ...existing, max_age: config.max_age, max_bytes: config.max_bytes, discard: config.discard });
        this.log.info({ stream: config.name, maxAgeNs: config.max_age, maxBytes: config.max_bytes, discard: config.discard }, 'stream limits updated');
      }
    }
  }

  /**
   * Publishes one event with its id as the message id (JetStream drops a duplicate within the
   * window) and the trace context in headers; `carrier` overrides the active context (outbox relay).
   */
  async publish(event: Event, carrier?: TraceCarrier): Promise<{ seq: number; duplicate: boolean }> {
    const parent = carrier ? propagation.extract(ROOT_CONTEXT, carrier) : otelContext.active();
    const subject = this.subject(event.type);
    return tracer.startActiveSpan(
      `${event.type} publish`,
      { kind: SpanKind.PRODUCER, attributes: { [ATTR.messagingSystem]: 'nats', [ATTR.messagingDestination]: subject, [ATTR.messagingMessageId]: event.eventId, [ATTR.eventType]: event.type, ...paymentOf(event) } },
      parent,
      async (span) => {
        try {
          const hdrs = natsHeaders();
          propagation.inject(otelContext.active(), hdrs, headerSetter);
          hdrs.set('Wp-Event-Type', event.type);
          const ack = await this.js.publish(subject, encodeEvent(event), { msgID: event.eventId, headers: hdrs });
          return { seq: ack.seq, duplicate: ack.duplicate };
        } catch (err) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR });
          throw err;
        } finally {
          span.end();
        }
      },
    );
  }

  /**
   * Runs `handler` for each event matching `types` (unprefixed subjects, wildcards allowed) on a
   * durable pull consumer with explicit ack. A handler that throws gets the message redelivered
   * after the backoff delay; handlers must be idempotent (redelivery happens). After
   * `limits.maxDeliver` deliveries the message is parked on the dead-letter stream (`parkDeadLetter`)
   * and terminated here, and the consumer goes on with the next. The handler runs inside a
   * CONSUMER span that continues the publisher's trace.
   */
  async consume(options: {
    area: StreamArea;
    durable: string;
    types: string[];
    handler: (event: Event, msg: JsMsg) => Promise<void>;
    deliverNew?: boolean;
    /** A new durable starts at this stream sequence (consumeEach's take-over); an existing one keeps its place. */
    startSeq?: number;
  }): Promise<{ stop: () => Promise<void> }> {
    const jsm = await jetstreamManager(this.nc);
    const stream = this.streamName(options.area);
    // One filter subject: Debian's nats-server 2.9 has no `filter_subjects`. With several types
    // the consumer takes the whole area and acks, unhandled, what it does not want.
    const single = options.types.length === 1;
    const config = {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      ...(options.startSeq !== undefined
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.startSeq }
        : { deliver_policy: options.deliverNew ? DeliverPolicy.New : DeliverPolicy.All }),
      filter_subject: this.subject(single ? options.types[0]! : `${options.area}.>`),
      ack_wait: this.limits.ackWaitMs * 1_000_000,
      max_deliver: this.limits.maxDeliver,
    };
    try {
      await jsm.consumers.add(stream, config);
    } catch (err) {
      // A durable made before (e.g. with the old unlimited max_deliver): bring it to this config.
      if (!(err instanceof JetStreamApiError)) throw err;
      await jsm.consumers.update(stream, options.durable, { max_deliver: config.max_deliver, ack_wait: config.ack_wait, filter_subject: config.filter_subject });
    }
    const wanted = options.types.map((t) => this.subject(t));
    const consumer = await this.js.consumers.get(stream, options.durable);
    // A pull lives 5 s (heartbeat every 2.5 s) rather than the client's 30 s: when the NATS node
    // holding the pull dies, the client notices missed heartbeats and pulls again from another,
    // so a node loss delays events by seconds. With 30 s the alerts consumer stored nothing for
    // 30-45 s after a node was killed (chaos --cluster). A renewed pull every 5 s costs nothing.
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 64, expires: 5_000 });
    const park = (msg: JsMsg, error: string) => this.parkDeadLetter(msg, { stream, consumer: options.durable, subject: msg.subject, seq: msg.seq, deliveries: msg.info.deliveryCount, error });
    // The backstop: a message whose last delivery was never answered (the handler hung past
    // ack_wait, the process died) is not redelivered; JetStream only says so in an advisory.
    // A queue group, so one replica parks it (the dead letter's message id dedupes the rest).
    const advisories = this.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${options.durable}`, { queue: `wp-dlq-${options.durable}` });
    const backstop = (async () => {
      for await (const m of advisories) {
        const advisory = m.json<{ stream: string; consumer: string; stream_seq: number; deliveries: number }>();
        await this.parkFromStream(advisory.stream, advisory.consumer, advisory.stream_seq, advisory.deliveries).catch((err: unknown) =>
          this.log.error({ err, stream, consumer: options.durable, seq: advisory.stream_seq }, 'could not park a message that reached its delivery limit'),
        );
      }
    })();
    // Read from the server at each scrape: what waits for this durable consumer (shared by the
    // replicas, so every replica reports the same value: alert on max, not sum).
    const unobserve = observeGauges(
      [
        { name: METRIC.consumerPending, description: 'Messages in the stream not yet delivered to this durable consumer', integer: true },
        { name: METRIC.consumerAckPending, description: 'Messages delivered to this durable consumer and not yet acknowledged', integer: true },
      ],
      async (record) => {
        const info = await consumer.info().catch(() => undefined);
        if (!info) return;
        // One durable name may consume several streams (alerts reads payment and escrow).
        const attributes = { consumer: options.durable, stream };
        record(METRIC.consumerPending, info.num_pending, attributes);
        record(METRIC.consumerAckPending, info.num_ack_pending, attributes);
      },
    );
    const done = (async () => {
      for await (const msg of messages) {
        if (single || wanted.some((pattern) => subjectMatches(pattern, msg.subject))) await this.handle(msg, options.handler, park);
        else msg.ack();
      }
    })();
    return {
      stop: async () => {
        unobserve();
        await messages.close();
        await done;
        advisories.unsubscribe();
        await backstop;
      },
    };
  }

  /**
   * Runs `handler` for each of `types` (exact types, no wildcards) on a durable of its own,
   * `<durable>-<type with dots as dashes>`, filtered on that one subject. One durable for several
   * types has to take the whole area on nats-server 2.9 (no `filter_subjects`), so it was
   * delivered, and acked, every event of the area: for the gateway's two rare hold types, two
   * unwanted deliveries per payment. A combined durable `durable` left from before is taken over:
   * the new ones start after its acknowledged floor (nothing is skipped; what it had delivered
   * unacknowledged comes again, which handlers tolerate) and it is deleted.
   */
  async consumeEach(options: { area: StreamArea; durable: string; types: string[]; handler: (event: Event, msg: JsMsg) => Promise<void> }): Promise<{ stop: () => Promise<void> }> {
    if (options.types.some((t) => /[*>]/.test(t))) throw new Error(`consumeEach takes exact types, not ${options.types.join(', ')}`);
    const jsm = await jetstreamManager(this.nc);
    const stream = this.streamName(options.area);
    const previous = await jsm.consumers.info(stream, options.durable).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) return undefined;
      throw err;
    });
    const startSeq = previous ? previous.ack_floor.stream_seq + 1 : undefined;
    const running: Array<{ stop: () => Promise<void> }> = [];
    try {
      for (const type of options.types) {
        running.push(await this.consume({ area: options.area, durable: perTypeDurable(options.durable, type), types: [type], handler: options.handler, startSeq }));
      }
      if (previous) {
        // Another replica may have deleted it first.
        await jsm.consumers.delete(stream, options.durable).catch(() => undefined);
        this.log.info({ stream, consumer: options.durable, startSeq }, 'combined consumer replaced by one per type');
      }
    } catch (err) {
      for (const c of running) await c.stop();
      throw err;
    }
    return { stop: async () => void (await Promise.all(running.map((c) => c.stop()))) };
  }

  /**
   * Parks a message on the dead-letter stream (subject `dlq.<stream>.<consumer>`) with its
   * headers, where it came from and the class of the last error, then terminates it on the
   * original consumer. Logged at error level: a parked event is one a user may be missing.
   * Returns false (and leaves the message to be redelivered) when the park could not be stored.
   */
  async parkDeadLetter(msg: JsMsg, info: DeadLetterInfo): Promise<boolean> {
    try {
      await this.js.publish(this.deadLetterSubject(info.stream, info.consumer), msg.data, { msgID: deadLetterMsgId(info), headers: deadLetterHeaders(msg.headers, info) });
    } catch (err) {
      this.log.error({ err, ...info }, 'could not park a dead letter; it will be redelivered');
      msg.nak(backoffFor(this.limits, info.deliveries));
      return false;
    }
    // No reason text: nats-server 2.9 does not recognise `+TERM <reason>` and leaves the message pending.
    msg.term();
    recordParked(info.consumer, info.stream);
    this.log.error({ ...info, deadLetterStream: this.streamName(DEAD_LETTER_AREA) }, 'event parked on the dead-letter stream');
    return true;
  }

  /** Parks the stored message `seq` of `stream` (the advisory path: no live JsMsg to hand). */
  private async parkFromStream(stream: string, consumer: string, seq: number, deliveries: number): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    const stored = await jsm.streams.getMessage(stream, { seq });
    if (!stored) return; // expired or deleted meanwhile: nothing left to park
    const info = { stream, consumer, subject: stored.subject, seq, deliveries, error: 'unacknowledged' };
    await this.js.publish(this.deadLetterSubject(stream, consumer), stored.data, { msgID: deadLetterMsgId(info), headers: deadLetterHeaders(stored.header, info) });
    recordParked(consumer, stream);
    this.log.error({ ...info, deadLetterStream: this.streamName(DEAD_LETTER_AREA) }, 'event parked on the dead-letter stream');
  }

  /**
   * Reads, in stream order, the events of one `type` (unprefixed, one subject: nats-server 2.9
   * has no `filter_subjects`) stored in `area`'s stream, from `since` (the time JetStream stored
   * them) or from the start, and ends at the last message stored when the read began. It uses an
   * ephemeral pull consumer without acks that is deleted afterwards (and expires on its own if
   * the reader dies), so it leaves nothing behind and does not disturb the durable consumers.
   * A message that is not an Event is logged and skipped.
   */
  async *history(area: StreamArea, type: string, options: { since?: Date; batch?: number } = {}): AsyncGenerator<{ event: Event; seq: number }> {
    const jsm = await jetstreamManager(this.nc);
    const stream = this.streamName(area);
    const last = (await jsm.streams.info(stream)).state.last_seq;
    const info = await jsm.consumers.add(stream, {
      ack_policy: AckPolicy.None,
      ...(options.since ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: options.since.toISOString() } : { deliver_policy: DeliverPolicy.All }),
      filter_subject: this.subject(type),
      inactive_threshold: 60 * 1_000_000_000,
      mem_storage: true,
    });
    try {
      const consumer = await this.js.consumers.get(stream, info.name);
      let pending = info.num_pending;
      let idle = 0;
      while (pending > 0) {
        let got = 0;
        for await (const msg of await consumer.fetch({ max_messages: Math.min(pending, options.batch ?? 1_000), expires: 2_000 })) {
          got++;
          // Stored after the read began (the type's last message before it was below `last`): not ours.
          if (msg.seq > last) {
            pending = 0;
            break;
          }
          pending = msg.seq === last ? 0 : msg.info.pending;
          let event: Event | undefined;
          try {
            event = decodeEvent(msg.data);
          } catch {
            this.log.warn({ subject: msg.subject, seq: msg.seq }, 'undecodable event skipped');
          }
          if (event) yield { event, seq: msg.seq };
          if (pending === 0) break;
        }
        if (got > 0) idle = 0;
        else if (++idle >= 3) throw new Error(`stream ${stream} stopped delivering with ${pending} messages pending`);
      }
    } finally {
      await jsm.consumers.delete(stream, info.name).catch(() => undefined);
    }
  }

  private async handle(msg: JsMsg, handler: (event: Event, msg: JsMsg) => Promise<void>, park: (msg: JsMsg, error: string) => Promise<boolean>): Promise<void> {
    const parent = propagation.extract(ROOT_CONTEXT, msg.headers, headerGetter);
    if (msg.info.redelivered) recordRedelivery(msg.info.consumer, msg.info.stream);
    let event: Event;
    try {
      event = decodeEvent(msg.data);
    } catch {
      // A message that is not an Event will never become one: park it rather than loop on it.
      await park(msg, 'undecodable');
      return;
    }
    await tracer.startActiveSpan(
      `${event.type} process`,
      { kind: SpanKind.CONSUMER, attributes: { [ATTR.messagingSystem]: 'nats', [ATTR.messagingDestination]: msg.subject, [ATTR.messagingMessageId]: event.eventId, [ATTR.eventType]: event.type, [ATTR.serviceSource]: this.source, ...paymentOf(event) } },
      parent,
      async (span) => {
        try {
          await handler(event, msg);
          msg.ack();
        } catch (err) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR });
          const deliveries = msg.info.deliveryCount;
          if (deliveries >= this.limits.maxDeliver) {
            await park(msg, errorClass(err));
          } else {
            const delayMs = backoffFor(this.limits, deliveries);
            this.log.warn({ err, eventType: event.type, eventId: event.eventId, deliveries, delayMs }, 'event handler failed; will redeliver');
            msg.nak(delayMs);
          }
        } finally {
          span.end();
        }
      },
    );
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }
}

/**
 * The payment an event is about, as a span attribute: a consumer's span then names the payment
 * even when it runs in a trace of its own (an event published without a trace context).
 */
function paymentOf(event: Event): Record<string, string> {
  const value = event.payload?.value as { paymentId?: unknown } | undefined;
  return typeof value?.paymentId === 'string' && value.paymentId !== '' ? { [ATTR.paymentId]: value.paymentId } : {};
}

/** The servers of a NATS_URL: one URL, or several comma-separated. */
export function natsServers(url: string): string[] {
  return url
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
}

/** NATS subject matching: `*` is one token, a final `>` is one or more. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
