import type { Event } from '../gen/wristpay/events/v1/events';
import type { Db, Queryable } from './db';
import { decodeEvent, encodeEvent } from './events';
import type { Logger } from './log';
import { captureTraceContext, type EventBus, type TraceCarrier } from './nats';
import { METRIC, observeGauges } from './telemetry/metrics';

/**
 * Writes `event` into the outbox inside the caller's transaction, so the state change and its
 * event commit or roll back together. The active trace context is stored with it so the
 * consumers' spans join the trace of the request that caused the event.
 */
export async function enqueueEvent(q: Queryable, event: Event): Promise<void> {
  await q.query('INSERT INTO outbox (event_id, event, trace_context) VALUES ($1, $2, $3)', outboxValues(event));
}

/**
 * The values of `event`'s outbox row (event_id, event, trace_context), for a statement that
 * writes the row itself: a data-modifying CTE or a function that commits the state change and
 * its event in one round trip instead of a transaction of several.
 */
export function outboxValues(event: Event): [string, Buffer, string] {
  return [event.eventId, Buffer.from(encodeEvent(event)), JSON.stringify(captureTraceContext())];
}

/**
 * The body of a data-modifying CTE that writes the outbox row whose `outboxValues` are bound at
 * $first, $first+1, $first+2 once for each row `source` (an earlier CTE) returns: the event
 * commits only with the change that returned a row, in the same statement.
 */
export function outboxInsertFrom(source: string, first: number): string {
  return `INSERT INTO outbox (event_id, event, trace_context) SELECT $${first}::uuid, $${first + 1}::bytea, $${first + 2}::jsonb FROM ${source}`;
}

/**
 * Moves committed outbox rows to JetStream in order. Publishing happens before the row is
 * marked, so a crash in between republishes the same message id, which JetStream drops as a
 * duplicate: each event arrives once. `kick()` after a commit keeps latency low; the poll
 * interval catches anything a crashed process left behind.
 */
export class OutboxRelay {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private unobserve: (() => void) | undefined;

  constructor(
    private readonly db: Db,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly pollMs = 250,
    private readonly batch = 100,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
    this.unobserve ??= observeGauges(
      [
        { name: METRIC.outboxOldestAge, unit: 's', description: 'Age of the oldest outbox row not yet published (0 when none)' },
        { name: METRIC.outboxBacklog, description: 'Outbox rows not yet published (counted up to 100000)', integer: true },
      ],
      async (record) => {
        const backlog = await this.backlog().catch(() => undefined);
        // The database is down: no value rather than a wrong one (the RPC errors show it).
        if (!backlog) return;
        record(METRIC.outboxOldestAge, backlog.oldestAgeSeconds);
        record(METRIC.outboxBacklog, backlog.rows);
      },
    );
    this.kick();
  }

  /**
   * What is waiting to be published: the rows and the age of the oldest (by the database clock).
   * A relay that is stuck (NATS down, a poison row) shows as an age that keeps growing.
   */
  async backlog(): Promise<{ rows: number; oldestAgeSeconds: number }> {
    const { rows } = await this.db.query<{ rows: bigint | number; age: number | string | null }>(
      `SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT 100000) p) AS rows,
              (SELECT EXTRACT(EPOCH FROM now() - created_at) FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1) AS age`,
    );
    return { rows: Number(rows[0]?.rows ?? 0), oldestAgeSeconds: Math.max(0, Number(rows[0]?.age ?? 0)) };
  }

  /** Asks for a relay pass now; passes never overlap. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .then(() => undefined)
      .catch((err) => this.log.warn({ err }, 'outbox relay pass failed; will retry'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Publishes everything pending; resolves when the outbox is empty. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const sent = await this.relayBatch();
      total += sent;
      if (sent < this.batch) return total;
    }
  }

  private async relayBatch(): Promise<number> {
    // No row lock is held while publishing (that would stall PGlite's single connection):
    // replicas racing on one row both publish it, and JetStream keeps one copy by message id.
    const { rows } = await this.db.query<{ seq: bigint; event: Uint8Array; trace_context: TraceCarrier }>(
      'SELECT seq, event, trace_context FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1',
      [this.batch],
    );
    // Published back to back on the one connection (JetStream stores them in the order sent)
    // and acknowledged together: one round trip per batch rather than one per event. Then what
    // went out is marked in one statement (one commit per batch). Only the acknowledged prefix
    // is marked: after a failure the rest is published again next pass (what was stored is
    // dropped as a duplicate by its message id). So during a NATS fault an event may be stored
    // after one that was committed later; consumers do not depend on that order (each handler
    // checks the state it moves from, and redelivery reorders anyway).
    const acks = await Promise.allSettled(rows.map((row) => this.bus.publish(decodeEvent(row.event), row.trace_context)));
    const failed = acks.findIndex((a) => a.status === 'rejected');
    const published = (failed === -1 ? rows : rows.slice(0, failed)).map((row) => String(row.seq));
    if (published.length) await this.db.query('UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])', [published]);
    if (failed !== -1) throw (acks[failed] as PromiseRejectedResult).reason;
    return rows.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.unobserve?.();
    this.unobserve = undefined;
    await this.running;
  }
}
