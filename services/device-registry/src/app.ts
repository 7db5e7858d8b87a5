import { BackgroundPublisher } from '../../../platform/background-publisher';
import { openDurableState } from '../../../platform/durable-state';
import { DeviceRegistryServiceService } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { contract, GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { connectRedis, redisTarget, redisVariable } from '../../../platform/redis';
import { composeService, dependency, listenEarly, type RunningService } from '../../../platform/service';
import { SERVICE, type Config } from './config';
import { deviceRegistryPolicy } from './policy';
import { deviceRegistryService } from './server';
import { SessionStore } from './sessions';
import { DeviceStore } from './store';
import { consumeTokenProvisioned } from './token-provisioned';

/** Composes the device registry from its config and starts serving; `port` is the bound port. */
export async function startDeviceRegistry(config: Config, log: Logger): Promise<RunningService & { port: number }> {
  return composeService(log, async (own) => {
    const server = GrpcServer.fromConfig(config, { service: SERVICE, log, services: [contract({ definition: DeviceRegistryServiceService, allowedCallers: deviceRegistryPolicy })] });
    const { port, serve } = await listenEarly(own, server, config.DEVICE_REGISTRY_PORT, config.SHUTDOWN_GRACE_MS);
    const redis = own(await dependency(log, 'Redis', redisVariable(config), () => connectRedis(redisTarget(config), log)), (r) => r.disconnect());
    const { bus, db, relay } = await openDurableState(config, SERVICE, log, own, { processedEventsKey: ['consumer', 'event_id'] });
    const devices = new DeviceStore(db);
    own(await dependency(log, 'NATS JetStream', 'NATS_URL', () => consumeTokenProvisioned({ bus, devices, log })), (c) => c.stop());
    const sessions = new SessionStore(redis, config.REDIS_KEY_PREFIX, {
      challengeMs: config.CHALLENGE_TTL_SECONDS * 1000,
      sessionMs: config.SESSION_TTL_SECONDS * 1000,
      maxAgeMs: config.SESSION_MAX_AGE_SECONDS * 1000,
    });
    const sessionEvents = own(new BackgroundPublisher(bus, log), (p) => p.drain(config.SHUTDOWN_GRACE_MS));
    serve([deviceRegistryService({ config, db, devices, sessions, sessionEvents, relay, log })]);
    log.info({ port, database: db.kind }, 'device-registry listening');
    return { port };
  });
}
