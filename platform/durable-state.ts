import { openServiceDb, type DatabaseConfig, type Db } from './db';
import type { Logger } from './log';
import { connectEventBus, type EventBus, type NatsConfig } from './nats';
import { OutboxRelay } from './outbox';
import { platformRetention, processedEventsRetention, RetentionJob, type RetentionConfig, type RetentionRule } from './retention';
import type { Own } from './service';

export interface DurableState {
  bus: EventBus;
  db: Db;
  relay: OutboxRelay;
}

/**
 * Opens what every service that owns a database runs the same way: the event bus (streams
 * ensured), its database (migrated), the outbox relay to JetStream, and the retention job
 * over the platform tables plus the service's `processed_events` (its primary key columns in
 * `processedEventsKey`, when it has one) and any of the service's own tables in `retention`. Each is registered with `own`, so the service's stop closes them after
 * its own consumers and server.
 */
export async function openDurableState(
  config: NatsConfig & DatabaseConfig & RetentionConfig,
  service: string,
  log: Logger,
  own: Own,
  options: { processedEventsKey?: readonly string[]; poolSize?: number; retention?: readonly RetentionRule[] },
): Promise<DurableState> {
  const bus = own(await connectEventBus(config, service, log), (b) => b.close());
  const db = own(await openServiceDb(config, service, log, options.poolSize), (d) => d.close());
  const relay = own(new OutboxRelay(db, bus, log), (r) => r.stop());
  relay.start();
  // A service whose consumers are idempotent by state alone keeps no processed_events table.
  const processed = options.processedEventsKey ? [processedEventsRetention(config, options.processedEventsKey)] : [];
  const rules = [...platformRetention(config), ...processed, ...(options.retention ?? [])];
  own(new RetentionJob(db, rules, log, { intervalMs: config.RETENTION_INTERVAL_SECONDS * 1000 }), (r) => r.stop()).start();
  return { bus, db, relay };
}
