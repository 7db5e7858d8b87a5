import { openDurableState } from '../../../platform/durable-state';
import { AlertsServiceService } from '../../../gen/wristpay/alerts/v1/alerts';
import { contract, GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { composeService, dependency, listenEarly, type RunningService } from '../../../platform/service';
import { alertIngest, consumeAlerts, type IngestOutcome } from './alert-consumer';
import { SERVICE, type Config } from './config';
import { alertsPolicy } from './policy';
import { alertsService } from './server';
import { AlertStore, alertsRetention } from './store';
import { FeedWakeups } from './wakeups';
import type { Event } from '../../../gen/wristpay/events/v1/events';

export interface RunningAlerts extends RunningService {
  port: number;
  /** What the consumer runs for each event (store, then wake streams); tests call it to play a redelivery. */
  ingest: (event: Event) => Promise<IngestOutcome>;
  wakeups: FeedWakeups;
}

/** Composes the alerts service from its config and starts serving; `port` is the bound port. */
export async function startAlerts(config: Config, log: Logger): Promise<RunningAlerts> {
  return composeService(log, async (own) => {
    const server = GrpcServer.fromConfig(config, { service: SERVICE, log, services: [contract({ definition: AlertsServiceService, allowedCallers: alertsPolicy(config) })] });
    const { port, serve } = await listenEarly(own, server, config.ALERTS_PORT, config.SHUTDOWN_GRACE_MS);
    const { bus, db } = await openDurableState(config, SERVICE, log, own, {
      processedEventsKey: ['consumer', 'event_id'],
      poolSize: config.DATABASE_POOL_SIZE,
      retention: [alertsRetention(config.ALERTS_RETENTION_DAYS)],
    });
    const store = new AlertStore(db);
    const wakeups = own(new FeedWakeups(bus, log).start(), (w) => w.stop());
    const ingest = alertIngest({ store, wakeups, log });
    own(await dependency(log, 'NATS JetStream', 'NATS_URL', () => consumeAlerts({ bus, ingest })), (c) => c.stop());
    serve([alertsService({ config, store, wakeups, log })]);
    log.info({ port, database: db.kind }, 'alerts listening');
    return { port, ingest, wakeups };
  });
}
