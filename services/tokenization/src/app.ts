import { openDurableState } from '../../../platform/durable-state';
import { TokenizationServiceService } from '../../../gen/wristpay/tokenization/v1/tokenization';
import { contract, GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { composeService, dependency, listenEarly, type RunningService } from '../../../platform/service';
import { SERVICE, vaultKeyring, type Config } from './config';
import { DeviceDirectory } from './devices';
import { consumeDeviceEvents } from './events';
import { tokenizationPolicy } from './policy';
import { tokenizationService } from './server';
import { TokenStore } from './store';

/** Composes the tokenization service from its config and starts serving; `port` is the bound port. */
export async function startTokenization(config: Config, log: Logger, options: { now?: () => number } = {}): Promise<RunningService & { port: number }> {
  const keyring = vaultKeyring(config);
  return composeService(log, async (own) => {
    const server = GrpcServer.fromConfig(config, { service: SERVICE, log, services: [contract({ definition: TokenizationServiceService, allowedCallers: tokenizationPolicy(config) })] });
    const { port, serve } = await listenEarly(own, server, config.TOKENIZATION_PORT, config.SHUTDOWN_GRACE_MS);
    const { bus, db, relay } = await openDurableState(config, SERVICE, log, own, { processedEventsKey: ['consumer', 'event_id'] });
    const devices = own(DeviceDirectory.connect(config), (d) => d.close());
    const tokens = new TokenStore(db, keyring, { bin: config.TOKEN_BIN, length: config.TOKEN_LENGTH });
    own(await dependency(log, 'NATS JetStream', 'NATS_URL', () => consumeDeviceEvents({ bus, tokens, relay, log })), (c) => c.stop());
    serve([tokenizationService({ config, db, tokens, devices, keyring, relay, log, now: options.now })]);
    log.info({ port, database: db.kind, kekVersion: keyring.activeVersion }, 'tokenization listening');
    return { port };
  });
}
