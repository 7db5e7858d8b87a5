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
import { decodeEvent, encodeEvent, STREAM_AREAS, type StreamArea } from './events';
import type { Logger } from './log';
import { dependency } from './service';
import { ATTR } from './telemetry/attributes';
import { METRIC, observeGauges, recordRedelivery } from './telemetry/metrics';

const tracer = trace.getTracer('wristpay.nats');

const headerSetter: TextMapSetter<MsgHdrs> = { set: (h, k, v) => h.set(k, v) };
const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, k) => h?.get(k) || undefined,
  keys: (h) => (h ? h.keys() : []),
};

/** The NATS settings every service reads (platform/config.ts natsEnv). */
export interface NatsConfig {
  NATS_URL: string;
  NATS_SUBJECT_PREFIX: string;
  NATS_STREAM_REPLICAS: number;
}

/** Connects a service to JetStream from its config; a failure names NATS_URL and stops the start. */
export function connectEventBus(config: NatsConfig, source: string, log: Logger): Promise<EventBus> {
  return dependency('NATS', 'NATS_URL', () =>
    EventBus.connect({ url: config.NATS_URL, prefix: config.NATS_SUBJECT_PREFIX, source, log, replicas: config.NATS_STREAM_REPLICAS }),
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
export class EventBus {
  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    private readonly prefix: string,
    private readonly source: string,
    private readonly log: Logger,
    private readonly replicas: number,
  ) {}

  /** Connects and makes sure every stream exists (creating is idempotent across replicas). */
  static async connect(options: { url: string; prefix: string; source: string; log: Logger; replicas?: number }): Promise<EventBus> {
    const nc = await connect({ servers: options.url, name: options.source, maxReconnectAttempts: -1 });
    const bus = new EventBus(nc, jetstream(nc), options.prefix, options.source, options.log, options.replicas ?? 1);
    await bus.ensureStreams();
    return bus;
  }

  subject(type: string): string {
    return this.prefix ? `${this.prefix}.${type}` : type;
  }

  streamName(area: StreamArea): string {
    return `${this.prefix ? `${this.prefix.toUpperCase()}_` : ''}${area.toUpperCase()}`;
  }

  async ensureStreams(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    for (const area of STREAM_AREAS) {
      const config = { name: this.streamName(area), subjects: [this.subject(`${area}.>`)], duplicate_window: 2 * 60 * 1_000_000_000, num_replicas: this.replicas };
      try {
        await jsm.streams.info(config.name);
      } catch (err) {
        if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
        try {
          await jsm.streams.add(config);
        } catch (addErr) {
          // Another replica created it between our info and add: that is fine.
          if (!(addErr instanceof JetStreamApiError)) throw addErr;
          await jsm.streams.info(config.name);
        }
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
      { kind: SpanKind.PRODUCER, attributes: { [ATTR.messagingSystem]: 'nats', [ATTR.messagingDestination]: subject, [ATTR.messagingMessageId]: event.eventId, [ATTR.eventType]: event.type } },
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
   * after a delay; handlers must be idempotent (redelivery happens). The handler runs inside a
   * CONSUMER span that continues the publisher's trace.
   */
  async consume(options: {
    area: StreamArea;
    durable: string;
    types: string[];
    handler: (event: Event, msg: JsMsg) => Promise<void>;
    deliverNew?: boolean;
  }): Promise<{ stop: () => Promise<void> }> {
    const jsm = await jetstreamManager(this.nc);
    const stream = this.streamName(options.area);
    // One filter subject: Debian's nats-server 2.9 has no `filter_subjects`. With several types
    // the consumer takes the whole area and acks, unhandled, what it does not want.
    const single = options.types.length === 1;
    await jsm.consumers.add(stream, {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: options.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
      filter_subject: this.subject(single ? options.types[0]! : `${options.area}.>`),
      ack_wait: 30 * 1_000_000_000,
      max_deliver: -1,
    });
    const wanted = options.types.map((t) => this.subject(t));
    const consumer = await this.js.consumers.get(stream, options.durable);
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 64 });
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
        if (single || wanted.some((pattern) => subjectMatches(pattern, msg.subject))) await this.handle(msg, options.handler);
        else msg.ack();
      }
    })();
    return {
      stop: async () => {
        unobserve();
        await messages.close();
        await done;
      },
    };
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

  private async handle(msg: JsMsg, handler: (event: Event, msg: JsMsg) => Promise<void>): Promise<void> {
    const parent = propagation.extract(ROOT_CONTEXT, msg.headers, headerGetter);
    if (msg.info.redelivered) recordRedelivery(msg.info.consumer, msg.info.stream);
    let event: Event;
    try {
      event = decodeEvent(msg.data);
    } catch {
      // A message that is not an Event will never become one: park it rather than loop on it.
      this.log.error({ subject: msg.subject, seq: msg.seq }, 'undecodable event terminated');
      msg.term('undecodable');
      return;
    }
    await tracer.startActiveSpan(
      `${event.type} process`,
      { kind: SpanKind.CONSUMER, attributes: { [ATTR.messagingSystem]: 'nats', [ATTR.messagingDestination]: msg.subject, [ATTR.messagingMessageId]: event.eventId, [ATTR.eventType]: event.type, [ATTR.serviceSource]: this.source } },
      parent,
      async (span) => {
        try {
          await handler(event, msg);
          msg.ack();
        } catch (err) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR });
          this.log.warn({ err, eventType: event.type, eventId: event.eventId }, 'event handler failed; will redeliver');
          msg.nak(1000);
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
