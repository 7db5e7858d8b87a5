import { z } from 'zod';
import { checkRedisEnv, env as envTypes, loadConfig, natsEnv, redisEnv, serverEnv } from '../../../platform/config';
import { repoPath } from '../../../platform/paths';

export const SERVICE = 'risk';
export const PORT_ENV = 'RISK_PORT';

const positiveInt = z.coerce.number().int().positive();

export const configSchema = z
  .object({
    ...serverEnv(PORT_ENV, 50053),
    ...redisEnv,
    ...natsEnv,
    /** Score at or above which a payment needs step-up on the phone. */
    RISK_CHALLENGE_THRESHOLD: z.coerce.number().int().min(0).max(1000).default(400),
    /** Score at or above which a payment is declined. */
    RISK_DECLINE_THRESHOLD: z.coerce.number().int().min(0).max(1000).default(800),
    /** Largest amount (minor units) the degraded mode may approve without features. */
    RISK_FALLBACK_MAX_APPROVE_MINOR: z.coerce.number().int().nonnegative().default(5_000),
    /** The rule set (YAML or JSON); reloaded on change when RISK_RULES_WATCH is on. */
    RISK_RULES_FILE: z.string().min(1).default(repoPath('services', 'risk', 'rules', 'default.yaml')),
    /** The logistic model's weights (YAML or JSON); reloaded like the rules. */
    RISK_MODEL_FILE: z.string().min(1).default(repoPath('services', 'risk', 'rules', 'model.yaml')),
    RISK_RULES_WATCH: envTypes.bool.default(true),
    /** Consume device.*, token.* and payment.declined into features (band/token blocked, refusals, declines), and payment.dispute.resolved into labels. */
    RISK_CONSUMERS: envTypes.bool.default(true),
    /** How many reasons a decision returns (most important first). */
    RISK_MAX_REASONS: positiveInt.max(20).default(5),
    /** Longest Score waits for the feature store before answering with the degraded fallback. */
    RISK_REDIS_TIMEOUT_MS: positiveInt.default(100),
    /** How long a decision and its features stay available to Explain and Feedback. */
    RISK_DECISION_TTL_DAYS: positiveInt.default(30),
    /**
     * Most decisions one replica holds in memory while they cannot be stored (Redis down or slow);
     * beyond it the oldest is dropped and counted. About 1.5 KB each.
     */
    RISK_DECISION_BACKLOG_MAX: positiveInt.max(1_000_000).default(10_000),
    /** How long a scored payment id is remembered so a retry is not counted twice. */
    RISK_DEDUPE_TTL_HOURS: positiveInt.default(48),
    /** How long an account remembers the merchants it paid (for "first payment at this merchant"). */
    RISK_MERCHANT_MEMORY_DAYS: positiveInt.default(180),
    /** How long an account's amount statistics and last place live without a payment. */
    RISK_PROFILE_TTL_DAYS: positiveInt.default(365),
    /** How far back an occurred_at is believed (an offline tap uploaded later); older is windowed at now minus this. */
    RISK_EVENT_MAX_PAST_SECONDS: positiveInt.default(86_400),
    /** How far ahead of risk's clock an occurred_at is believed (terminal clock skew). */
    RISK_EVENT_MAX_FUTURE_SECONDS: z.coerce.number().int().nonnegative().default(5),
    /** The account's usual area forgets: an approved payment's weight halves every this many days. */
    RISK_AREA_HALF_LIFE_DAYS: positiveInt.default(30),
    /** Most payments one band or account window keeps; bounds memory and script time under a burst. */
    RISK_WINDOW_MAX_EVENTS: positiveInt.max(100_000).default(2_000),
  })
  .refine((c) => c.RISK_DECLINE_THRESHOLD > c.RISK_CHALLENGE_THRESHOLD, {
    path: ['RISK_DECLINE_THRESHOLD'],
    message: 'must be greater than RISK_CHALLENGE_THRESHOLD',
  })
  .superRefine(checkRedisEnv);

export type Config = z.infer<typeof configSchema>;
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => loadConfig(configSchema, env);
