import { z } from 'zod';
import { base64Key, clientEnv, databaseEnv, grpcAddress, loadConfig, natsEnv, serverEnv } from '../../../platform/config';

export const SERVICE = 'tokenization';
export const PORT_ENV = 'TOKENIZATION_PORT';

export const configSchema = z.object({
  ...serverEnv(PORT_ENV, 50052),
  ...natsEnv,
  ...databaseEnv,
  ...clientEnv,
  DEVICE_REGISTRY_ADDR: grpcAddress.default('127.0.0.1:50051'),
  /** HKDF master key the per-token keys are derived from (base64, 32 bytes). A Secret in the cluster. */
  TOKEN_MASTER_KEY: base64Key(32),
  /** Key-encryption keys by version: "1:<base64 32 bytes>,2:<base64>". A Secret in the cluster. */
  VAULT_KEKS: z.string().regex(/^\d+:[A-Za-z0-9+/=]+(,\d+:[A-Za-z0-9+/=]+)*$/, 'must be "version:base64key[,version:base64key...]"'),
  /** The KEK version new records are wrapped with; must be listed in VAULT_KEKS. */
  VAULT_ACTIVE_KEY_VERSION: z.coerce.number().int().positive().default(1),
  /** The token BIN range device tokens are issued from (6-8 digits). */
  TOKEN_BIN: z.string().regex(/^\d{6,8}$/, 'must be 6 to 8 digits').default('489537'),
  TOKEN_LENGTH: z.coerce.number().int().min(16).max(19).default(16),
  OFFLINE_CODE_STEP_SECONDS: z.coerce.number().int().positive().default(30),
});

export type Config = z.infer<typeof configSchema>;
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => loadConfig(configSchema, env);
