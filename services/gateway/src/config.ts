import { z } from 'zod';
import { clientEnv, grpcAddress, loadConfig, natsEnv, redisEnv, serverEnv } from '../../../platform/config';

export const SERVICE = 'gateway';
export const PORT_ENV = 'GATEWAY_PORT';

export const configSchema = z.object({
  ...serverEnv(PORT_ENV, 50050),
  ...redisEnv,
  ...natsEnv,
  ...clientEnv,
  DEVICE_REGISTRY_ADDR: grpcAddress.default('127.0.0.1:50051'),
  TOKENIZATION_ADDR: grpcAddress.default('127.0.0.1:50052'),
  RISK_ADDR: grpcAddress.default('127.0.0.1:50053'),
  SETTLEMENT_ADDR: grpcAddress.default('127.0.0.1:50054'),
  /** How long payment records and idempotent answers are kept in Redis. */
  PAYMENT_RECORD_TTL_SECONDS: z.coerce.number().int().positive().default(30 * 24 * 3600),
});

export type Config = z.infer<typeof configSchema>;
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => loadConfig(configSchema, env);
