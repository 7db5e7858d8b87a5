import { z } from 'zod';
import { base64Key, callerList, clientEnv, ConfigError, databaseEnv, grpcAddress, loadConfig, natsEnv, retentionEnv, serverEnv } from '../../../platform/config';
import { Keyring, KeyringError } from './domain/envelope';

export const SERVICE = 'tokenization';
export const PORT_ENV = 'TOKENIZATION_PORT';

export const configSchema = z.object({
  ...serverEnv(PORT_ENV, 50052),
  ...natsEnv,
  ...databaseEnv,
  ...retentionEnv,
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
  /**
   * Caller identities (mTLS certificate CNs, comma-separated) allowed to IssueOfflineCode. A code
   * is a payment credential, so only the phone-facing wallet backend gets one; never the gateway
   * or a terminal.
   */
  OFFLINE_CODE_CALLERS: callerList.default(['wallet']),
  /** Records re-wrapped per transaction by RotateKeys: small enough that a payment on the same row waits only milliseconds. */
  VAULT_REWRAP_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(200),
});

export type Config = z.infer<typeof configSchema>;

/** The vault keyring from VAULT_KEKS and VAULT_ACTIVE_KEY_VERSION; a ConfigError naming the variable when they do not fit. */
export function vaultKeyring(config: Pick<Config, 'VAULT_KEKS' | 'VAULT_ACTIVE_KEY_VERSION'>): Keyring {
  try {
    return Keyring.parse(config.VAULT_KEKS, config.VAULT_ACTIVE_KEY_VERSION);
  } catch (err) {
    if (!(err instanceof KeyringError)) throw err;
    const variable = /^active/.test(err.message) ? 'VAULT_ACTIVE_KEY_VERSION' : 'VAULT_KEKS';
    throw new ConfigError(`invalid configuration: ${variable}: ${err.message}`);
  }
}

/** Reads and validates the environment once, keys included, so a bad keyring stops the service at start. */
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => {
  const config = loadConfig(configSchema, env);
  vaultKeyring(config);
  return config;
};
