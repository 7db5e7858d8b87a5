import { openServiceDb } from '../../../platform/db';
import { GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { connectEventBus } from '../../../platform/nats';
import { OutboxRelay } from '../../../platform/outbox';
import { platformRetention, processedEventsRetention, RetentionJob } from '../../../platform/retention';
import { dependency, type RunningService } from '../../../platform/service';
import { SERVICE, vaultKeyring, type Config } from './config';
import { DeviceDirectory } from './devices';
import { consumeDeviceEvents } from './events';
import { tokenizationService } from './server';
import { TokenStore } from './store';

/** Composes the tokenization service from its config and starts serving; `port` is the bound port. */
export async function startTokenization(config: Config, log: Logger, options: { now?: () => number } = {}): Promise<RunningService & { port: number }> {
  const keyring = vaultKeyring(config);
  // What is open so far, closed in reverse order on stop, or at once when start-up fails half way
  // (so a failed start does not hold the process, or a test run, open).
  const opened: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const close of opened.reverse()) await Promise.resolve(close()).catch((err) => log.warn({ err }, 'error while closing'));
  };
  try {
    const bus = await connectEventBus(config, SERVICE, log);
    opened.push(() => bus.close());
    const db = await openServiceDb(config, SERVICE, log);
    opened.push(() => db.close());
    const relay = new OutboxRelay(db, bus, log);
    relay.start();
    opened.push(() => relay.stop());
    const retention = new RetentionJob(db, [...platformRetention(config), processedEventsRetention(config, ['consumer', 'event_id'])], log, {
      intervalMs: config.RETENTION_INTERVAL_SECONDS * 1000,
    });
    retention.start();
    opened.push(() => retention.stop());
    const devices = DeviceDirectory.connect(config);
    opened.push(() => devices.close());
    const tokens = new TokenStore(db, keyring, { bin: config.TOKEN_BIN, length: config.TOKEN_LENGTH });
    const consumer = await dependency('NATS JetStream', 'NATS_URL', () => consumeDeviceEvents({ bus, tokens, relay, log }));
    opened.push(() => consumer.stop());
    const server = GrpcServer.fromConfig(config, {
      service: SERVICE,
      log,
      services: [tokenizationService({ config, db, tokens, devices, keyring, relay, log, now: options.now })],
    });
    opened.push(() => server.shutdown(config.SHUTDOWN_GRACE_MS));
    const port = await server.listen(config.TOKENIZATION_PORT);
    log.info({ port, database: db.kind, kekVersion: keyring.activeVersion }, 'tokenization listening');
    // Stop drains in-flight calls first, then the consumer, the relay and the connections.
    return { port, stop: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
