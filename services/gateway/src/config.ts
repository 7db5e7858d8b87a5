import { z } from 'zod';
import { callerList, clientEnv, databaseEnv, grpcAddress, loadConfig, natsEnv, retentionEnv, serverEnv } from '../../../platform/config';

export const SERVICE = 'gateway';
export const PORT_ENV = 'GATEWAY_PORT';

export const configSchema = z.object({
  ...serverEnv(PORT_ENV, 50050),
  ...natsEnv,
  ...databaseEnv,
  ...retentionEnv,
  ...clientEnv,
  DEVICE_REGISTRY_ADDR: grpcAddress.default('127.0.0.1:50051'),
  TOKENIZATION_ADDR: grpcAddress.default('127.0.0.1:50052'),
  RISK_ADDR: grpcAddress.default('127.0.0.1:50053'),
  SETTLEMENT_ADDR: grpcAddress.default('127.0.0.1:50054'),
  /** PostgreSQL connections per replica (an Authorize holds one only for its two short writes). */
  DATABASE_POOL_SIZE: z.coerce.number().int().positive().max(200).default(10),
  /** How long the phone has to confirm a step-up before the payment is declined (challenge_expired). */
  CHALLENGE_TTL_SECONDS: z.coerce.number().int().min(1).max(3600).default(120),
  /**
   * How long a payment may stay RECEIVED (never answered: the terminal gave up and its attempt
   * died) before the gateway closes it DECLINED (abandoned) and releases any hold it placed.
   * Longer than any terminal keeps retrying.
   */
  ABANDON_AFTER_SECONDS: z.coerce.number().int().min(1).default(300),
  /** How often the sweeper expires challenges and closes abandoned payments. */
  SWEEP_INTERVAL_MS: z.coerce.number().int().positive().default(1_000),
  /**
   * A replica's liveness beat (ms): a RECEIVED payment whose replica has not beaten for three of
   * these is taken over by a retry at once (a crashed gateway's payment resumes within ~2 s).
   */
  INSTANCE_HEARTBEAT_MS: z.coerce.number().int().min(50).max(10_000).default(500),
  /** Identities (certificate CNs) of the phone-facing wallet backend: ConfirmPayment / DeclinePayment. */
  WALLET_CALLERS: callerList.default(['wallet']),
  /** Identities of people in the back office: merchant onboarding. */
  BACKOFFICE_CALLERS: callerList.default(['backoffice']),
});

export type Config = z.infer<typeof configSchema>;
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => loadConfig(configSchema, env);
