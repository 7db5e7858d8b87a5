/**
 * The production stores and rollout rules (issue 15, part 5), statically: service ConfigMaps
 * hashed so an edit rolls the pods, zone spreading on every prod Deployment, PostgreSQL as a
 * CloudNativePG Cluster with WAL archiving, nightly backups and a recovery manifest, and schema
 * migrations as pre-deploy Jobs (k8s/overlays/prod/migrate) while prod services only check.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { load, loadAll } from 'js-yaml';
import type { IContainer, IPodSpec } from 'kubernetes-models/v1';
import { cnpgProblems } from './cnpg';
import { OVERLAYS, REPO_ROOT, Rendered, renderOverlay, schemaProblems, type K8sObject } from './render';
import { SERVICES } from './services';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { quantityBytes, redisBytes, redisSettings, resolveAddress, sentinelsOf } from './redis';
import { hardeningProblems, hostPort, ingressAllowed, resolveEndpoint, workloads, type Workload } from './workloads';

const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, new Rendered(o, renderOverlay(o))])) as Record<(typeof OVERLAYS)[number], Rendered>;
const OWNERS = SERVICES.filter((s) => s.database);

function kustomize(dir: string): K8sObject[] {
  const out = execFileSync(process.env.KUBECTL ?? 'kubectl', ['kustomize', path.resolve(REPO_ROOT, dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return loadAll(out).filter(Boolean) as K8sObject[];
}

const deploymentOf = (r: Rendered, name: string) => workloads(r).find((w) => w.obj.kind === 'Deployment' && w.name === name)!;
const container = (w: Workload): IContainer => w.podSpec.containers[0]!;

describe.each(OVERLAYS)('k8s/overlays/%s: service config rolls the pods', (overlay) => {
  it.each(SERVICES.map((s) => s.name))('%s reads a ConfigMap whose name carries its content hash', (name) => {
    const r = rendered[overlay];
    const refs = (container(deploymentOf(r, name)).envFrom ?? []).map((e) => e.configMapRef?.name).filter(Boolean) as string[];
    expect(refs).toHaveLength(1);
    expect(refs[0]).toMatch(new RegExp(`^${name}-config-[a-z0-9]{10}$`));
    expect(r.find('ConfigMap', refs[0]!)).toBeDefined();
  });

  it('a changed setting changes the name (and so the pod template)', () => {
    // On a copy of k8s/: the other k8s tests render the real files meanwhile.
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'wp-k8s-'));
    try {
      fs.cpSync(path.join(REPO_ROOT, 'k8s'), path.join(copy, 'k8s'), { recursive: true });
      const name = () => {
        const risk = kustomize(path.join(copy, 'k8s', 'overlays', overlay)).find((o) => o.kind === 'Deployment' && o.metadata.name === 'risk')!;
        return (risk.spec as { template: { spec: IPodSpec } }).template.spec.containers[0]!.envFrom![0]!.configMapRef!.name;
      };
      const original = name();
      expect(original).toBe(container(deploymentOf(rendered[overlay], 'risk')).envFrom![0]!.configMapRef!.name);
      const env = path.join(copy, 'k8s', 'base', 'config', 'risk.env');
      fs.writeFileSync(env, fs.readFileSync(env, 'utf8').replace(/^LOG_LEVEL=.*$/m, 'LOG_LEVEL=debug'));
      expect(name()).not.toBe(original);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('k8s/overlays/prod: zones', () => {
  it.each(SERVICES.map((s) => s.name))('%s spreads its pods over zones (one per zone first), as the prod comments promise', (name) => {
    const spread = (deploymentOf(rendered.prod, name).podSpec.topologySpreadConstraints ?? []).find((c) => c.topologyKey === 'topology.kubernetes.io/zone');
    expect(spread).toEqual({ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { 'app.kubernetes.io/name': name } } });
  });

  it('the PostgreSQL instances are on three different zones', () => {
    const cluster = rendered.prod.find<{ spec: { instances: number; affinity: Record<string, unknown> } }>('Cluster', 'postgres')!;
    expect(cluster.spec.instances).toBe(3);
    expect(cluster.spec.affinity).toMatchObject({ enablePodAntiAffinity: true, topologyKey: 'topology.kubernetes.io/zone', podAntiAffinityType: 'required' });
  });
});

describe('k8s/overlays/prod: PostgreSQL backups and point-in-time recovery', () => {
  type ClusterSpec = { backup?: { retentionPolicy?: string; barmanObjectStore?: { destinationPath: string; wal?: unknown } }; minSyncReplicas?: number; bootstrap: { recovery?: { source: string; recoveryTarget?: { targetTime?: string } } }; externalClusters?: Array<{ name: string; barmanObjectStore?: { destinationPath: string; serverName?: string } }> };
  const cluster = () => rendered.prod.find<{ spec: ClusterSpec }>('Cluster', 'postgres')!;

  it('replaces the single postgres pod: no postgres StatefulSet in prod, the Service postgres selects the primary', () => {
    expect(workloads(rendered.prod).filter((w) => w.name === 'postgres')).toEqual([]);
    expect(rendered.prod.find<{ spec: { selector: unknown } }>('Service', 'postgres')!.spec.selector).toEqual({ 'cnpg.io/cluster': 'postgres', 'cnpg.io/instanceRole': 'primary' });
  });

  it('archives WAL and keeps 30 days of base backups in object storage, with a synchronous standby', () => {
    const spec = cluster().spec;
    expect(spec.backup?.retentionPolicy).toBe('30d');
    expect(spec.backup?.barmanObjectStore?.destinationPath).toMatch(/^s3:\/\//);
    expect(spec.backup?.barmanObjectStore?.wal).toBeDefined();
    expect(spec.minSyncReplicas).toBe(1);
  });

  it('takes a base backup every night from the Cluster, by barmanObjectStore', () => {
    const scheduled = rendered.prod.ofKind<{ spec: { cluster: { name: string }; method: string; schedule: string } }>('ScheduledBackup');
    expect(scheduled.map((s) => [s.spec.cluster.name, s.spec.method, s.spec.schedule.split(' ').length])).toEqual([['postgres', 'barmanObjectStore', 6]]);
  });

  it('the recovery manifest is a valid Cluster restoring the prod archive to a point in time', () => {
    const docs = loadAll(fs.readFileSync(path.join(REPO_ROOT, 'k8s/overlays/prod/postgres/recovery-cluster.yaml'), 'utf8')).filter(Boolean) as Array<K8sObject & { spec: ClusterSpec }>;
    expect(docs.map((d) => d.kind)).toEqual(['Cluster']);
    const restore = docs[0]!;
    expect(cnpgProblems(restore)).toEqual([]);
    expect(restore.metadata.name).not.toBe('postgres');
    const recovery = restore.spec.bootstrap.recovery!;
    expect(recovery.recoveryTarget?.targetTime).toMatch(/\+00$/);
    const source = restore.spec.externalClusters?.find((c) => c.name === recovery.source);
    expect(source?.barmanObjectStore?.destinationPath).toBe(cluster().spec.backup?.barmanObjectStore?.destinationPath);
    expect(source?.barmanObjectStore?.serverName).toBe('postgres');
    // It archives somewhere else: two timelines must not write into one another's archive.
    expect(restore.spec.backup?.barmanObjectStore?.destinationPath).not.toBe(cluster().spec.backup?.barmanObjectStore?.destinationPath);
  });

  it('the prod kustomization does not apply the recovery manifest', () => {
    const k = load(fs.readFileSync(path.join(REPO_ROOT, 'k8s/overlays/prod/kustomization.yaml'), 'utf8')) as { resources: string[] };
    expect(k.resources).not.toContain('postgres/recovery-cluster.yaml');
    expect(rendered.prod.ofKind('Cluster').map((c) => c.metadata.name)).toEqual(['postgres']);
  });
});

describe('schema migrations before the rollout', () => {
  const jobs = kustomize('k8s/overlays/prod/migrate');
  const asWorkload = (job: K8sObject): Workload => {
    const template = (job.spec as { template: { metadata: { labels: Record<string, string> }; spec: IPodSpec } }).template;
    return { obj: job, name: job.metadata.name, namespace: job.metadata.namespace ?? 'default', podSpec: template.spec, podLabels: template.metadata.labels, selector: {} };
  };

  it('prod services only check their schema (MIGRATE_ON_START=false); dev migrates at start', () => {
    for (const overlay of OVERLAYS) {
      for (const spec of SERVICES) {
        const ref = container(deploymentOf(rendered[overlay], spec.name)).envFrom![0]!.configMapRef!.name!;
        const value = rendered[overlay].find<{ data: Record<string, string> }>('ConfigMap', ref)!.data.MIGRATE_ON_START;
        expect([overlay, spec.name, value]).toEqual([overlay, spec.name, overlay === 'prod' && spec.database ? 'false' : undefined]);
      }
    }
  });

  it('one migrate Job per database-owning service, valid, hardened, in namespace wristpay', () => {
    expect(jobs.map((j) => j.kind)).toEqual(OWNERS.map(() => 'Job'));
    expect(jobs.map((j) => j.metadata.name).sort()).toEqual(OWNERS.map((s) => `${s.name}-migrate`).sort());
    const problems = jobs.flatMap((j) => [...schemaProblems(j), ...hardeningProblems(asWorkload(j))]);
    expect(problems).toEqual([]);
    expect(new Set(jobs.map((j) => j.metadata.namespace))).toEqual(new Set(['wristpay']));
  });

  it.each(OWNERS.map((s) => s.name))('%s-migrate runs the migrate tool for it, with its DATABASE_URL, its image, and may reach PostgreSQL', (name) => {
    const job = asWorkload(jobs.find((j) => j.metadata.name === `${name}-migrate`)!);
    const c = container(job);
    expect(c.command).toEqual(['node', 'dist/platform/migrate-cli.js', name]);
    expect(fs.existsSync(path.join(REPO_ROOT, 'platform', 'migrate-cli.ts'))).toBe(true);
    const deployment = deploymentOf(rendered.prod, name);
    const dbEnv = (x: IContainer) => x.env?.find((e) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef;
    expect(dbEnv(c)).toEqual(dbEnv(container(deployment)));
    expect(c.image).toBe(container(deployment).image);
    expect(job.podSpec.serviceAccountName).toBe(name);
    // Not selected by the service's own Service (it would get traffic).
    const service = rendered.prod.find<{ spec: { selector: Record<string, string> } }>('Service', name)!;
    expect(Object.entries(service.spec.selector).every(([k, v]) => job.podLabels[k] === v)).toBe(false);
    const target = resolveEndpoint(rendered.prod, 'postgres', hostPort('postgres:5432')!.port, 'wristpay');
    if (typeof target === 'string') throw new Error(target);
    expect(ingressAllowed(rendered.prod, job.podLabels, target)).toBe(true);
  });

  it('says in which order to apply them', () => {
    const text = fs.readFileSync(path.join(REPO_ROOT, 'k8s/overlays/prod/migrate/jobs.yaml'), 'utf8');
    const order = ['kubectl apply -k k8s/overlays/prod/migrate\n', 'kubectl -n wristpay wait --for=condition=complete job', 'kubectl apply -k k8s/overlays/prod\n'].map((s) => text.indexOf(s));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });
});


describe('k8s/overlays/prod: Redis per use, primary + 2 replicas behind 3 Sentinels', () => {
  const r = rendered.prod;
  const sentinelSets = sentinelsOf(r);
  /** The data StatefulSets the Sentinels monitor, by master name. */
  const masters = sentinelSets.flatMap((s) =>
    s.monitors.map((m) => {
      const target = resolveAddress(r, m.host, m.port, 'wristpay');
      return { sentinels: s, monitor: m, target };
    }),
  );
  const zoneSpread = (w: Workload) => (w.podSpec.topologySpreadConstraints ?? []).find((c) => c.topologyKey === 'topology.kubernetes.io/zone');
  const pdbOf = (w: Workload) => r.ofKind<IPodDisruptionBudget>('PodDisruptionBudget').filter((p) => p.spec?.selector?.matchLabels && Object.entries(p.spec.selector.matchLabels).every(([k, v]) => w.podLabels[k] === v));
  /** Three pods, one per zone first, and at most one of them down by choice. */
  const haProblems = (w: Workload): string[] => {
    const problems: string[] = [];
    const replicas = (w.obj.spec as { replicas?: number }).replicas;
    if (replicas !== 3) problems.push(`${w.name}: replicas ${replicas ?? 'unset'}, want 3`);
    const spread = zoneSpread(w);
    if (!spread || spread.maxSkew !== 1 || spread.whenUnsatisfiable !== 'DoNotSchedule' || spread.labelSelector?.matchLabels?.['app.kubernetes.io/name'] !== w.podLabels['app.kubernetes.io/name']) {
      problems.push(`${w.name}: no zone spread (maxSkew 1, DoNotSchedule, on its own pods)`);
    }
    const pdbs = pdbOf(w);
    if (pdbs.length !== 1) problems.push(`${w.name}: ${pdbs.length} PodDisruptionBudgets, want 1`);
    else if (!(pdbs[0]!.spec?.maxUnavailable === 1 || pdbs[0]!.spec?.minAvailable === 2)) problems.push(`${w.name}: PDB allows more than one pod down`);
    problems.push(...hardeningProblems(w));
    return problems;
  };

  it('replaces base\'s single redis: no redis workload or Service in prod, and no service reads REDIS_URL', () => {
    expect(workloads(r).filter((w) => w.name === 'redis')).toEqual([]);
    expect(r.find('Service', 'redis')).toBeUndefined();
    for (const name of ['device-registry', 'risk']) {
      const c = container(deploymentOf(r, name));
      expect((c.env ?? []).map((e) => e.name)).not.toContain('REDIS_URL');
    }
  });

  it('one Sentinel set of 3 pods monitors both masters, quorum a majority and at most the count', () => {
    expect(sentinelSets.map((s) => s.workload.name)).toEqual(['redis-sentinel']);
    const s = sentinelSets[0]!;
    expect(haProblems(s.workload)).toEqual([]);
    const count = (s.workload.obj.spec as { replicas: number }).replicas;
    expect(s.monitors.map((m) => m.name).sort()).toEqual(['risk', 'sessions']);
    for (const m of s.monitors) {
      expect(m.quorum).toBeLessThanOrEqual(count);
      expect(m.quorum).toBeGreaterThan(count / 2);
      expect(Number(m.options['down-after-milliseconds'])).toBeGreaterThan(0);
      expect(Number(m.options['failover-timeout'])).toBeGreaterThan(0);
    }
    // Stable names, not pod IPs: Sentinel resolves and announces hostnames.
    expect(s.conf).toMatch(/^sentinel resolve-hostnames yes$/m);
    expect(s.conf).toMatch(/^sentinel announce-hostnames yes$/m);
    // Sentinel rewrites its config: it must run from a writable emptyDir copy.
    const c = container(s.workload);
    expect(c.command).toEqual(['sh', '/scripts/sentinel-start.sh']);
    const confMount = c.volumeMounts?.find((m) => m.mountPath === '/etc/sentinel');
    expect(s.workload.podSpec.volumes?.find((v) => v.name === confMount?.name)?.emptyDir).toBeDefined();
  });

  it.each([
    ['sessions', 'redis-sessions', 'device-registry', 'noeviction', 1024 ** 3],
    ['risk', 'redis-risk', 'risk', 'volatile-lru', 14 * 1024 ** 3],
  ] as const)('master %s is StatefulSet %s, used by %s only: %s, maxmemory from the sizing, memory limit above it, 3 pods over zones, a PDB', (master, set, client, policy, maxmemory) => {
    const m = masters.find((x) => x.monitor.name === master);
    if (!m) throw new Error(`no Sentinel monitors ${master}`);
    const target = m.target;
    if (typeof target === 'string') throw new Error(target);
    const w = target.workload;
    expect(w.name).toBe(set);
    expect(w.obj.kind).toBe('StatefulSet');
    expect(haProblems(w)).toEqual([]);
    const settings = redisSettings(r, w);
    expect(settings['maxmemory-policy']).toBe(policy);
    expect(redisBytes(settings.maxmemory ?? '')).toBe(maxmemory);
    const limit = quantityBytes(container(w).resources?.limits?.memory);
    // Room over maxmemory for fragmentation, buffers and a fork's copy-on-write (README sizing).
    expect(limit).toBeGreaterThanOrEqual(1.4 * maxmemory);
    expect(quantityBytes(container(w).resources?.requests?.memory)).toBe(limit);
    // The start script names this master when it asks the Sentinels who is primary.
    const env = Object.fromEntries((container(w).env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ REDIS_MASTER_NAME: master, REDIS_SERVICE: (w.obj.spec as { serviceName: string }).serviceName });
    // The Service gives unready pods a name too (replicas and Sentinels reach a node before it is Ready).
    expect(r.find<{ spec: { publishNotReadyAddresses?: boolean } }>('Service', set)!.spec.publishNotReadyAddresses).toBe(true);
    const users = SERVICES.filter((s) => ingressAllowed(r, deploymentOf(r, s.name).podLabels, target) === true).map((s) => s.name);
    expect(users).toEqual([client]);
    // Its own nodes (replication) and the Sentinels reach it.
    for (const peer of [w, sentinelSets[0]!.workload]) expect(ingressAllowed(r, peer.podLabels, target)).toBe(true);
  });

  it('the Sentinels admit device-registry, risk, each other and the data nodes; no other service', () => {
    const s = sentinelSets[0]!.workload;
    const target = resolveAddress(r, 'redis-sentinel-0.redis-sentinel', 26379, 'wristpay');
    if (typeof target === 'string') throw new Error(target);
    expect(SERVICES.filter((x) => ingressAllowed(r, deploymentOf(r, x.name).podLabels, target) === true).map((x) => x.name).sort()).toEqual(['device-registry', 'risk']);
    for (const peer of [s, ...masters.map((m) => (m.target as Exclude<typeof m.target, string>).workload)]) expect(ingressAllowed(r, peer.podLabels, target)).toBe(true);
  });
});
