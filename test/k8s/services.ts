import { z } from 'zod';
import { DATABASES } from '../../scripts/mesh';
import * as alerts from '../../services/alerts/src/config';
import * as deviceRegistry from '../../services/device-registry/src/config';
import * as gateway from '../../services/gateway/src/config';
import * as risk from '../../services/risk/src/config';
import * as settlement from '../../services/settlement/src/config';
import * as tokenization from '../../services/tokenization/src/config';

/** What the manifests must agree with, read from each service's own config.ts. */
export interface ServiceSpec {
  name: string;
  portEnv: string;
  schema: z.ZodObject;
  /**
   * The PostgreSQL database this service owns (DESIGN.md: one per owning service), as npm start
   * knows it (scripts/mesh.ts); in the cluster it is also the name of its login role.
   */
  database?: string;
}

export const SERVICES: readonly ServiceSpec[] = [deviceRegistry, tokenization, risk, settlement, gateway, alerts].map((s) => ({
  name: s.SERVICE,
  portEnv: s.PORT_ENV,
  schema: s.configSchema,
  database: DATABASES[s.SERVICE as keyof typeof DATABASES],
}));

export const SERVICE_NAMES = SERVICES.map((s) => s.name);

/** The keys a service reads. */
export function schemaKeys(spec: ServiceSpec): string[] {
  return Object.keys(spec.schema.shape);
}

/** Keys with no default that are not optional: the service refuses to start without them. */
export function requiredKeys(spec: ServiceSpec): string[] {
  return schemaKeys(spec).filter((key) => !z.safeParse(spec.schema.shape[key]!, undefined).success);
}

/**
 * Keys whose default only makes sense on a laptop (127.0.0.1 addresses, embedded PGlite when
 * DATABASE_URL is unset): in the cluster they must be set, or the service silently talks to
 * nothing, or keeps payments in memory.
 */
export function clusterRequiredKeys(spec: ServiceSpec): string[] {
  return schemaKeys(spec).filter((key) => (/_(URL|ADDR)$/.test(key) && key !== 'REDIS_URL') || key === spec.portEnv);
}

/**
 * Redis, for a service that reads it, may be named in either form platform/config.ts
 * (checkRedisEnv) accepts: one node (REDIS_URL) or Sentinel (REDIS_SENTINELS + REDIS_MASTER_NAME).
 * With neither, the service dials REDIS_URL's 127.0.0.1 default. Returns the problem, if any
 * (mixed or half forms are left to the schema, which refuses them).
 */
export function redisFormProblem(spec: ServiceSpec, set: ReadonlySet<string>): string | undefined {
  if (!schemaKeys(spec).includes('REDIS_URL')) return undefined;
  if (set.has('REDIS_URL') || (set.has('REDIS_SENTINELS') && set.has('REDIS_MASTER_NAME'))) return undefined;
  return 'Redis is not set: want REDIS_URL, or REDIS_SENTINELS and REDIS_MASTER_NAME (its default is for a laptop: 127.0.0.1)';
}

/** Keys whose values are secrets: they may only come from a Secret, never a ConfigMap or a literal. */
export function isSecretKey(key: string): boolean {
  return /(KEY|KEKS|SECRET|PASSWORD|TOKEN|CREDENTIALS)$/.test(key) || key === 'DATABASE_URL' || key === 'REDIS_URL';
}

/** The first issue of a schema parse, naming the variable but never echoing its value. */
export function configIssues(spec: ServiceSpec, env: Record<string, string>): string[] {
  const parsed = spec.schema.safeParse(env);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`);
}
