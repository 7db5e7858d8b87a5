/**
 * CloudNativePG objects (postgresql.cnpg.io/v1) are not in kubernetes-models, so the prod
 * overlay's Cluster, ScheduledBackup and Database are checked against these schemas instead:
 * derived by hand from the CNPG API reference (v1.25: ClusterSpec, BootstrapInitDB,
 * BootstrapRecovery, RecoveryTarget, ManagedConfiguration/RoleConfiguration, StorageConfiguration,
 * AffinityConfiguration, BackupConfiguration, BarmanObjectStoreConfiguration, S3Credentials,
 * WalBackupConfiguration, DataBackupConfiguration, ExternalCluster, ScheduledBackupSpec,
 * DatabaseSpec). They cover the fields this repository uses, strictly: a misspelt or
 * misplaced field fails here instead of being dropped by the API server's pruning. A field
 * CNPG has but this schema lacks also fails: add it here from the reference when needed.
 */
import { z } from 'zod';
import type { K8sObject, Rendered } from './render';
import type { Workload } from './workloads';

const quantity = z.string().regex(/^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'a Kubernetes quantity');
const secretRef = z.object({ name: z.string().min(1) }).strict();
const secretKeyRef = z.object({ name: z.string().min(1), key: z.string().min(1) }).strict();
const s3Credentials = z.object({ accessKeyId: secretKeyRef, secretAccessKey: secretKeyRef, region: secretKeyRef.optional(), sessionToken: secretKeyRef.optional() }).strict();
const compression = z.enum(['gzip', 'bzip2', 'snappy', 'lz4', 'xz', 'zstd']);
const barmanObjectStore = z
  .object({
    destinationPath: z.string().regex(/^(s3|gs|https?):\/\//, 'an object store URL'),
    endpointURL: z.string().url().optional(),
    serverName: z.string().optional(),
    s3Credentials,
    wal: z.object({ compression: compression.optional(), maxParallel: z.number().int().positive().optional(), encryption: z.enum(['AES256', 'aws:kms']).optional() }).strict().optional(),
    data: z.object({ compression: compression.optional(), jobs: z.number().int().positive().optional(), encryption: z.enum(['AES256', 'aws:kms']).optional(), immediateCheckpoint: z.boolean().optional() }).strict().optional(),
  })
  .strict();
const resources = z
  .object({
    requests: z.object({ cpu: quantity.optional(), memory: quantity.optional() }).strict().optional(),
    limits: z.object({ cpu: quantity.optional(), memory: quantity.optional() }).strict().optional(),
  })
  .strict();
const storage = z.object({ size: quantity, storageClass: z.string().optional(), resizeInUseVolumes: z.boolean().optional() }).strict();
const identifier = z.string().regex(/^[a-z_][a-z0-9_]*$/, 'a PostgreSQL identifier');

const clusterSpec = z
  .object({
    instances: z.number().int().min(1),
    imageName: z.string().regex(/^[\w./-]+(:[\w.-]+)?(@sha256:[a-f0-9]{64})?$/),
    primaryUpdateStrategy: z.enum(['unsupervised', 'supervised']).optional(),
    primaryUpdateMethod: z.enum(['switchover', 'restart']).optional(),
    minSyncReplicas: z.number().int().min(0).optional(),
    maxSyncReplicas: z.number().int().min(0).optional(),
    enableSuperuserAccess: z.boolean().optional(),
    postgresql: z.object({ parameters: z.record(z.string(), z.string()).optional() }).strict().optional(),
    bootstrap: z
      .object({
        initdb: z.object({ database: identifier, owner: identifier, secret: secretRef.optional() }).strict().optional(),
        recovery: z
          .object({
            source: z.string().min(1),
            database: identifier.optional(),
            owner: identifier.optional(),
            recoveryTarget: z
              .object({
                // RFC 3339 or PostgreSQL's timestamp format, with an explicit zone.
                targetTime: z.string().regex(/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)$/).optional(),
                targetLSN: z.string().optional(),
                targetName: z.string().optional(),
                targetImmediate: z.boolean().optional(),
                exclusive: z.boolean().optional(),
              })
              .strict()
              .optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .refine((b) => Boolean(b.initdb) !== Boolean(b.recovery), 'exactly one of initdb, recovery'),
    managed: z
      .object({
        roles: z.array(z.object({ name: identifier, ensure: z.enum(['present', 'absent']).optional(), login: z.boolean().optional(), passwordSecret: secretRef.optional() }).strict()),
      })
      .strict()
      .optional(),
    storage,
    walStorage: storage.optional(),
    affinity: z
      .object({
        enablePodAntiAffinity: z.boolean().optional(),
        topologyKey: z.string().optional(),
        podAntiAffinityType: z.enum(['preferred', 'required']).optional(),
        nodeSelector: z.record(z.string(), z.string()).optional(),
      })
      .strict()
      .optional(),
    resources: resources.optional(),
    backup: z
      .object({
        retentionPolicy: z.string().regex(/^[1-9][0-9]*[dwm]$/, 'like 30d, 4w or 6m').optional(),
        barmanObjectStore: barmanObjectStore.optional(),
        target: z.enum(['primary', 'prefer-standby']).optional(),
      })
      .strict()
      .optional(),
    externalClusters: z.array(z.object({ name: z.string().min(1), barmanObjectStore: barmanObjectStore.optional() }).strict()).optional(),
  })
  .strict();

const scheduledBackupSpec = z
  .object({
    // robfig/cron with seconds: six fields.
    schedule: z.string().refine((s) => s.trim().split(/\s+/).length === 6, 'six cron fields (seconds first)'),
    immediate: z.boolean().optional(),
    suspend: z.boolean().optional(),
    backupOwnerReference: z.enum(['none', 'self', 'cluster']).optional(),
    method: z.enum(['barmanObjectStore', 'volumeSnapshot', 'plugin']).optional(),
    target: z.enum(['primary', 'prefer-standby']).optional(),
    cluster: secretRef,
  })
  .strict();

const databaseSpec = z
  .object({
    name: identifier,
    owner: identifier,
    ensure: z.enum(['present', 'absent']).optional(),
    databaseReclaimPolicy: z.enum(['retain', 'delete']).optional(),
    cluster: secretRef,
  })
  .strict();

const SPECS: Record<string, z.ZodType> = { Cluster: clusterSpec, ScheduledBackup: scheduledBackupSpec, Database: databaseSpec };

export const CNPG_API = 'postgresql.cnpg.io/v1';

/** Schema problems of a CNPG object, as readable lines; undefined when `obj` is not one. */
export function cnpgProblems(obj: K8sObject): string[] | undefined {
  if (obj.apiVersion !== CNPG_API) return undefined;
  const spec = SPECS[obj.kind];
  if (!spec) return [`${obj.kind}/${obj.metadata.name}: ${CNPG_API} ${obj.kind} has no schema in test/k8s/cnpg.ts`];
  const parsed = spec.safeParse(obj.spec);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${obj.kind}/${obj.metadata.name}: spec.${i.path.join('.')}: ${i.message}`);
}

/**
 * The pods the CNPG operator runs for each Cluster, as far as Services and NetworkPolicies see
 * them: the primary's labels and the ports CNPG's instance pods expose (postgresql 5432, the
 * instance manager's status 8000). Used to resolve a Service that selects the primary; not a
 * workload of this repository (the operator sets the pods' security context).
 */
export function operatorWorkloads(r: Rendered): Workload[] {
  return r.ofKind('Cluster')
    .filter((c) => c.apiVersion === CNPG_API)
    .map((obj) => ({
      obj,
      name: obj.metadata.name,
      namespace: obj.metadata.namespace ?? 'default',
      podLabels: { 'cnpg.io/cluster': obj.metadata.name, 'cnpg.io/instanceRole': 'primary' },
      selector: { 'cnpg.io/cluster': obj.metadata.name },
      podSpec: {
        containers: [
          {
            name: 'postgres',
            ports: [
              { name: 'postgresql', containerPort: 5432, protocol: 'TCP' },
              { name: 'status', containerPort: 8000, protocol: 'TCP' },
            ],
          },
        ],
      },
    }));
}
