/**
 * Static checks of k8s/ and the Tiltfile against the Kubernetes schemas and against the code:
 * both overlays are rendered with `kubectl kustomize`, every object is validated with
 * kubernetes-models, and each service's Deployment is compared with its config.ts (env keys,
 * port, probes), with the Services it calls, and with the hardened-pod profile. No cluster and
 * no Docker engine are needed; kubectl must be on PATH (or KUBECTL set).
 *
 * Each test collects every problem it finds and compares the list with [], so a failure
 * prints all of them, one readable line each.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { load } from 'js-yaml';
import type { IConfigMap, IService } from 'kubernetes-models/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ATTR } from '../../platform/telemetry/attributes';
import type { IPodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import type { IPrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { PROMETHEUS_RULE_FILE, renderPrometheusRule, ruleGroups } from '../../scripts/prometheus-rule';
import { DEMO_MERCHANTS, merchantIdentity } from '../../sim/terminal';
import { LIVENESS_SERVICE } from '../../platform/grpc/server';
import { operatorWorkloads } from './cnpg';
import { quantityBytes, redisSettings, redisUse } from './redis';
import { NODE_HEAP_FLAGS } from '../../scripts/mesh';
import { OVERLAYS, REPO_ROOT, Rendered, describeObject, renderOverlay, schemaProblems, type Overlay } from './render';
import { SERVICES, SERVICE_NAMES, clusterRequiredKeys, configIssues, isSecretKey, redisFormProblem, requiredKeys, schemaKeys, type ServiceSpec } from './services';
import { asString, asStringList, nestedCalls, parseTopLevelCalls, type Call, type Value } from './starlark';
import {
  allContainers,
  decodeSecret,
  envValues,
  hardeningProblems,
  hostPort,
  ingressAllowed,
  logicalName,
  matchesLabels,
  namedPort,
  probeHandlers,
  renderedSecrets,
  resolveEndpoint,
  resolveEnv,
  workloads,
  type Endpoint,
  type ResolvedEnv,
  type SecretLookup,
  type Workload,
} from './workloads';

const NAMESPACE = 'wristpay';
const TELEMETRY_PRELOAD = './dist/platform/telemetry/register.js';
/** Services whose replica count an HPA owns in prod (their state is in PostgreSQL or Redis, shared by the replicas). */
const AUTOSCALED = ['gateway', 'risk'];
/** Infra a service depends on, by the variable that points at it. */
const INFRA_BY_VARIABLE: Record<string, string> = { NATS_URL: 'nats', REDIS_URL: 'redis', DATABASE_URL: 'postgres' };
/**
 * The eviction policies each Redis user's data allows (k8s/README.md, "Redis: what it holds"):
 * a live session must never be evicted; every risk key has a TTL, and losing the least recently
 * used beats refusing to score. A Redis shared by both (base) must suit both: noeviction.
 */
const REDIS_POLICIES: Record<string, string[]> = { 'device-registry': ['noeviction'], risk: ['volatile-lru', 'noeviction'] };

// ---- render once, at collection time ----------------------------------------------------------

const renders = new Map<Overlay, Rendered | Error>();
for (const overlay of OVERLAYS) {
  try {
    renders.set(overlay, new Rendered(overlay, renderOverlay(overlay)));
  } catch (err) {
    renders.set(overlay, err as Error);
  }
}

/** The rendered overlay; rethrows the render error (e.g. kubectl missing) inside the test. */
function rendered(overlay: Overlay): Rendered {
  const r = renders.get(overlay)!;
  if (r instanceof Error) throw r;
  return r;
}

function readRepoFile(relative: string): string {
  return fs.readFileSync(path.join(REPO_ROOT, relative), 'utf8');
}

interface Kustomization {
  secretGenerator?: Array<{ name: string }>;
  configMapGenerator?: Array<{ name: string }>;
}

function kustomization(overlay: Overlay): Kustomization {
  return (load(readRepoFile(`k8s/overlays/${overlay}/kustomization.yaml`)) ?? {}) as Kustomization;
}

const devGeneratedSecrets = (): string[] => (kustomization('dev').secretGenerator ?? []).map((g) => g.name);

/**
 * Secrets as the pods of an overlay see them. Dev: its rendered (generated) Secrets. Prod
 * renders none (they come from outside), so a prod reference is resolved through the dev
 * overlay's generator of the same name: dev and prod must agree on names and keys.
 */
function secretsFor(overlay: Overlay): SecretLookup {
  if (overlay === 'dev') return renderedSecrets(rendered('dev'));
  const dev = rendered('dev');
  const generators = devGeneratedSecrets();
  return (name) => {
    const secret = dev.ofKind('Secret').find((s) => logicalName(s.metadata.name, generators) === name);
    return secret ? decodeSecret(secret) : undefined;
  };
}

function deployment(r: Rendered, name: string): Workload {
  const w = workloads(r).find((x) => x.obj.kind === 'Deployment' && x.name === name);
  if (!w) throw new Error(`k8s/overlays/${r.overlay}: no Deployment named "${name}"`);
  return w;
}

function serverContainer(w: Workload) {
  if (w.podSpec.containers.length !== 1) {
    throw new Error(`${describeObject(w.obj)}: want exactly one container, found ${w.podSpec.containers.length}`);
  }
  return w.podSpec.containers[0]!;
}

function serviceEnv(overlay: Overlay, spec: ServiceSpec): ResolvedEnv {
  const r = rendered(overlay);
  const w = deployment(r, spec.name);
  return resolveEnv(r, serverContainer(w), secretsFor(overlay), describeObject(w.obj));
}

/** The Service objects' workloads, by the address variables a service's config sets. */
function addressTargets(overlay: Overlay, spec: ServiceSpec): Array<{ variable: string; value: string; target: Endpoint | string }> {
  const r = rendered(overlay);
  const values = envValues(serviceEnv(overlay, spec));
  return Object.entries(values)
    .filter(([key]) => /_ADDR$/.test(key) || key in INFRA_BY_VARIABLE || key === 'OTEL_EXPORTER_OTLP_ENDPOINT')
    .map(([variable, value]) => {
      const hp = hostPort(value);
      return { variable, value, target: hp ? resolveEndpoint(r, hp.host, hp.port, NAMESPACE) : `"${variable}" is not host:port or a URL with a port` };
    });
}

/** Never print a secret: addresses with credentials are shown without them. */
function redact(value: string): string {
  return value.replace(/\/\/[^/@\s]*@/, '//***@');
}

// ---- every object ------------------------------------------------------------------------------

describe.each(OVERLAYS)('k8s/overlays/%s', (overlay) => {
  it('renders with kubectl kustomize', () => {
    expect(rendered(overlay).objects.length).toBeGreaterThan(0);
  });

  it('every object is valid against the Kubernetes schema (kubernetes-models)', () => {
    expect(rendered(overlay).objects.flatMap(schemaProblems)).toEqual([]);
  });

  it('every object is in namespace wristpay, which enforces the restricted Pod Security Standard', () => {
    const r = rendered(overlay);
    const problems: string[] = [];
    const ns = r.find('Namespace', NAMESPACE);
    if (!ns) problems.push(`no Namespace ${NAMESPACE}`);
    else if (ns.metadata.labels?.['pod-security.kubernetes.io/enforce'] !== 'restricted') {
      problems.push(`Namespace ${NAMESPACE}: label pod-security.kubernetes.io/enforce is not "restricted"`);
    }
    for (const o of r.objects) {
      if (o.kind !== 'Namespace' && o.metadata.namespace !== NAMESPACE) {
        problems.push(`${describeObject(o)}: namespace is ${o.metadata.namespace ?? 'unset'}, want ${NAMESPACE}`);
      }
      if (o.metadata.labels?.['app.kubernetes.io/part-of'] !== 'wristpay') {
        problems.push(`${describeObject(o)}: no label app.kubernetes.io/part-of=wristpay`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every workload (services and infra) runs hardened pods', () => {
    expect(workloads(rendered(overlay)).flatMap(hardeningProblems)).toEqual([]);
  });

  it('every ConfigMap and Secret a workload references exists with the keys it reads', () => {
    const r = rendered(overlay);
    const secrets = secretsFor(overlay);
    const problems: string[] = [];
    for (const w of workloads(r)) {
      for (const c of allContainers(w.podSpec)) {
        problems.push(...resolveEnv(r, c, secrets, `${describeObject(w.obj)} container "${c.name}"`).problems);
      }
      for (const v of w.podSpec.volumes ?? []) {
        if (v.configMap && !v.configMap.optional && !r.find('ConfigMap', v.configMap.name ?? '')) {
          problems.push(`${describeObject(w.obj)}: volume ${v.name} mounts ConfigMap "${v.configMap.name}", which is not rendered`);
        }
        if (v.secret && !v.secret.optional && !secrets(v.secret.secretName ?? '')) {
          problems.push(`${describeObject(w.obj)}: volume ${v.name} mounts Secret "${v.secret.secretName}", which is not provided`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('no ConfigMap holds a secret', () => {
    const problems: string[] = [];
    for (const cm of rendered(overlay).ofKind<IConfigMap>('ConfigMap')) {
      for (const [key, value] of Object.entries(cm.data ?? {})) {
        if (isSecretKey(key)) problems.push(`${describeObject(cm)}: key ${key} belongs in a Secret`);
        if (/:\/\/[^/\s:@]*:[^/\s@]+@/.test(value)) problems.push(`${describeObject(cm)}: key ${key} holds a URL with a password`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every Service selects exactly one workload and targets ports it exposes', () => {
    const r = rendered(overlay);
    const problems: string[] = [];
    for (const svc of r.ofKind<IService>('Service')) {
      const selected = [...workloads(r), ...operatorWorkloads(r)].filter((w) => svc.spec?.selector && matchesLabels(svc.spec.selector, w.podLabels));
      if (selected.length !== 1) {
        problems.push(`${describeObject(svc)}: selects ${selected.length} workloads (${selected.map((w) => w.name).join(', ') || 'none'}), want 1`);
        continue;
      }
      for (const port of svc.spec?.ports ?? []) {
        if (typeof port.port !== 'number') continue;
        const endpoint = resolveEndpoint(r, svc.metadata.name, port.port, NAMESPACE);
        if (typeof endpoint === 'string') problems.push(`${describeObject(svc)}: ${endpoint}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('HorizontalPodAutoscalers and PodDisruptionBudgets point at existing workloads', () => {
    const r = rendered(overlay);
    const problems: string[] = [];
    for (const hpa of r.ofKind<IHorizontalPodAutoscaler>('HorizontalPodAutoscaler')) {
      const ref = hpa.spec!.scaleTargetRef;
      if (!r.find(ref.kind, ref.name)) problems.push(`${describeObject(hpa)}: scales ${ref.kind}/${ref.name}, which does not exist`);
    }
    for (const pdb of r.ofKind<IPodDisruptionBudget>('PodDisruptionBudget')) {
      if (!workloads(r).some((w) => matchesLabels(pdb.spec?.selector?.matchLabels, w.podLabels))) {
        problems.push(`${describeObject(pdb)}: selects no pods`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('ingress is denied by default; each workload opens its own ports', () => {
    const r = rendered(overlay);
    const policies = r.ofKind<INetworkPolicy>('NetworkPolicy');
    const denyAll = policies.find(
      (p) =>
        Object.keys(p.spec?.podSelector.matchLabels ?? {}).length === 0 &&
        !p.spec?.podSelector.matchExpressions?.length &&
        (p.spec?.policyTypes ?? []).includes('Ingress') &&
        (p.spec?.ingress ?? []).length === 0,
    );
    expect(denyAll ? [] : ['no default-deny ingress NetworkPolicy (podSelector {}, policyTypes [Ingress], no rules)']).toEqual([]);
  });

  it('lets the phone-facing wallet backend (deployed elsewhere, pods labelled wallet) reach what it calls, and nothing else', () => {
    const r = rendered(overlay);
    // device-registry: pairing, sessions, ReportLost; tokenization: IssueOfflineCode;
    // settlement: SetBandLimits; alerts: StreamAlerts. Risk is not its business; the gateway is
    // open to every client (merchants' terminals), so the wallet reaches it like anyone.
    const calls = ['device-registry', 'tokenization', 'settlement', 'alerts', 'gateway'];
    const problems: string[] = [];
    for (const name of SERVICE_NAMES) {
      const w = deployment(r, name);
      const port = serverContainer(w).ports?.find((p) => p.name === 'grpc');
      if (!port) continue;
      const target = resolveEndpoint(r, name, port.containerPort, NAMESPACE);
      if (typeof target === 'string') {
        problems.push(`${name}: ${target}`);
        continue;
      }
      const allowed = ingressAllowed(r, { 'app.kubernetes.io/name': 'wallet' }, target);
      if (allowed !== calls.includes(name)) problems.push(`wallet → ${name}: ${allowed === true ? 'allowed' : allowed === false ? 'blocked' : allowed}, want ${calls.includes(name) ? 'allowed' : 'blocked'}`);
    }
    expect(problems).toEqual([]);
  });
});

// ---- each service against its config.ts -------------------------------------------------------

describe.each(OVERLAYS)('k8s/overlays/%s services', (overlay) => {
  describe.each(SERVICES.map((s) => [s.name, s] as const))('%s', (name, spec) => {
    it('sets only keys its configSchema reads (plus OTEL_*), and every required one', () => {
      const env = serviceEnv(overlay, spec);
      const keys = new Set(schemaKeys(spec));
      const problems = [...env.problems];
      for (const variable of env.vars.keys()) {
        if (!keys.has(variable) && !variable.startsWith('OTEL_')) {
          problems.push(`${name}: sets ${variable}, which services/${name}/src/config.ts does not read`);
        }
      }
      for (const key of requiredKeys(spec)) {
        if (!env.vars.has(key)) problems.push(`${name}: required ${key} (no default in config.ts) is not set`);
      }
      for (const key of clusterRequiredKeys(spec)) {
        if (!env.vars.has(key)) problems.push(`${name}: ${key} is not set: its default is for a laptop (127.0.0.1 or embedded PGlite)`);
      }
      const redisProblem = redisFormProblem(spec, new Set(env.vars.keys()));
      if (redisProblem) problems.push(`${name}: ${redisProblem}`);
      const values = envValues(env);
      if (values.GRPC_TLS !== 'mtls') problems.push(`${name}: GRPC_TLS is ${values.GRPC_TLS ?? 'unset'}, want mtls in the cluster`);
      for (const key of ['TLS_CA_FILE', 'TLS_CERT_FILE', 'TLS_KEY_FILE']) {
        if (!values[key]) problems.push(`${name}: ${key} is not set (mTLS)`);
      }
      if (values.OTEL_SERVICE_NAME !== name) problems.push(`${name}: OTEL_SERVICE_NAME is ${values.OTEL_SERVICE_NAME ?? 'unset'}, want ${name}`);
      if (!values.OTEL_EXPORTER_OTLP_ENDPOINT) problems.push(`${name}: OTEL_EXPORTER_OTLP_ENDPOINT is not set`);
      problems.push(...configIssues(spec, values).map((issue) => `${name}: config.ts rejects ${issue}`));
      expect(problems).toEqual([]);
    });

    it('takes its secrets from Secrets only', () => {
      const problems: string[] = [];
      for (const [variable, source] of serviceEnv(overlay, spec).vars) {
        if (isSecretKey(variable) && source.from !== 'secret') {
          problems.push(`${name}: ${variable} comes from ${source.from === 'configMap' ? `ConfigMap ${source.name}` : `a ${source.from}`}, want a Secret`);
        }
      }
      if (spec.database && serviceEnv(overlay, spec).vars.get('DATABASE_URL')?.from !== 'secret') {
        problems.push(`${name}: owns database ${spec.database} but DATABASE_URL does not come from a Secret`);
      }
      expect(problems).toEqual([]);
    });

    it('runs its own main under the telemetry preload, from the shared image', () => {
      const w = deployment(rendered(overlay), name);
      const c = serverContainer(w);
      const argv = [...(c.command ?? []), ...(c.args ?? [])];
      const expected = ['node', ...(overlay === 'dev' ? ['--watch'] : []), ...NODE_HEAP_FLAGS, '--require', TELEMETRY_PRELOAD, `dist/services/${name}/src/main.js`];
      const problems: string[] = [];
      if (JSON.stringify(argv) !== JSON.stringify(expected)) {
        problems.push(`${name}: runs ${JSON.stringify(argv)}, want ${JSON.stringify(expected)}`);
      }
      // V8's old generation must fit the container with room for the young generation, code and
      // native memory (TLS, HTTP/2): at most half of the memory limit.
      const oldSpaceMiB = Number(/^--max-old-space-size=(\d+)$/.exec(argv.find((a) => a.startsWith('--max-old-space-size=')) ?? '')?.[1]);
      const limitMiB = quantityBytes(c.resources?.limits?.memory) / 1024 ** 2;
      if (!(oldSpaceMiB > 0 && oldSpaceMiB <= limitMiB / 2)) problems.push(`${name}: --max-old-space-size=${oldSpaceMiB} MiB does not fit half of its ${limitMiB} MiB memory limit`);
      const image = c.image ?? '';
      if (overlay === 'dev' && image !== 'wristpay:dev') problems.push(`${name}: image ${image}, want wristpay:dev (the image the Tiltfile builds)`);
      if (overlay === 'prod' && (!/(^|\/)wristpay[:@]/.test(image) || /:(dev|latest)$/.test(image))) {
        problems.push(`${name}: image ${image}, want <registry>/wristpay with a release tag or digest`);
      }
      expect(problems).toEqual([]);
    });

    it('exposes port "grpc" at the value of its PORT_ENV on its Service, and only that port', () => {
      const w = deployment(rendered(overlay), name);
      const c = serverContainer(w);
      const problems: string[] = [];
      const port = Number(envValues(serviceEnv(overlay, spec))[spec.portEnv]);
      const grpc = namedPort(c, 'grpc');
      if (!grpc) problems.push(`${name}: no container port named grpc`);
      else if (grpc.containerPort !== port) problems.push(`${name}: container port grpc is ${grpc.containerPort} but ${spec.portEnv} is ${port}`);
      const svc = rendered(overlay).find<IService>('Service', name);
      const svcPort = svc?.spec?.ports?.find((p) => p.name === 'grpc');
      if (!svc) problems.push(`${name}: no Service named ${name}`);
      else if (!svcPort) problems.push(`${name}: Service has no port named grpc`);
      else if (svcPort.port !== port) problems.push(`${name}: Service port grpc is ${svcPort.port}, want ${port} (clients dial the same port in and out of the cluster)`);
      const health = namedPort(c, 'health');
      for (const p of svc?.spec?.ports ?? []) {
        const target = p.targetPort ?? p.port;
        if (target === 'health' || (health && target === health.containerPort)) {
          problems.push(`${name}: Service port ${p.name ?? p.port} exposes the plaintext health port; only the kubelet probes it, so keep it off the Service`);
        }
      }
      expect(problems).toEqual([]);
    });

    it('serves Prometheus metrics on container port "metrics" at METRICS_PORT, kept off the Service', () => {
      const c = serverContainer(deployment(rendered(overlay), name));
      const problems: string[] = [];
      const value = envValues(serviceEnv(overlay, spec)).METRICS_PORT;
      const metrics = namedPort(c, 'metrics');
      if (!value || Number(value) === 0) problems.push(`${name}: METRICS_PORT is ${value ?? 'unset'}, so no metrics endpoint listens`);
      if (!metrics) problems.push(`${name}: no container port named metrics`);
      else if (Number(value) !== metrics.containerPort) problems.push(`${name}: container port metrics is ${metrics.containerPort} but METRICS_PORT is ${value}`);
      for (const p of rendered(overlay).find<IService>('Service', name)?.spec?.ports ?? []) {
        if (p.targetPort === 'metrics' || (metrics && p.targetPort === metrics.containerPort)) problems.push(`${name}: Service port ${p.name ?? p.port} exposes the metrics port; Prometheus scrapes the pods`);
      }
      expect(problems).toEqual([]);
    });

    it('probes a plaintext health port (HEALTH_PORT, container port "health") with native gRPC probes, since port grpc is mTLS-only', () => {
      const w = deployment(rendered(overlay), name);
      const c = serverContainer(w);
      const problems: string[] = [];
      const values = envValues(serviceEnv(overlay, spec));
      const grpcPort = Number(values[spec.portEnv]);
      const healthPort = values.HEALTH_PORT === undefined ? undefined : Number(values.HEALTH_PORT);
      if (healthPort === undefined || healthPort === 0) {
        problems.push(`${name}: HEALTH_PORT is ${healthPort ?? 'unset'}, so no health server listens: set it (the kubelet's grpc probe has no client certificate for the mTLS port)`);
      } else if (healthPort === grpcPort) {
        problems.push(`${name}: HEALTH_PORT ${healthPort} equals ${spec.portEnv}: the health port must be a second, plaintext port`);
      }
      const health = namedPort(c, 'health');
      if (!health) problems.push(`${name}: no container port named health`);
      else if (healthPort !== undefined && health.containerPort !== healthPort) {
        problems.push(`${name}: container port health is ${health.containerPort} but HEALTH_PORT is ${healthPort}`);
      }
      for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
        const probe = c[kind];
        if (!probe) {
          if (kind !== 'startupProbe') problems.push(`${name}: no ${kind}`);
          continue;
        }
        const handlers = probeHandlers(probe);
        if (handlers.length !== 1 || handlers[0] !== 'grpc') {
          problems.push(`${name}: ${kind} uses ${handlers.join('+') || 'nothing'}, want grpc (grpc.health.v1)`);
          continue;
        }
        const probed = probe.grpc!.port;
        if (probed === grpcPort) problems.push(`${name}: ${kind} probes the mTLS grpc port ${probed}, which the kubelet cannot reach; want HEALTH_PORT=${healthPort ?? 'unset'}`);
        else if (probed !== healthPort) problems.push(`${name}: ${kind} probes port ${probed}, want HEALTH_PORT=${healthPort ?? 'unset'}`);
        // A service waiting for its database listens NOT_SERVING on '' (readiness); liveness and
        // start-up must ask LIVENESS_SERVICE, or the kubelet restarts a pod for waiting.
        const wanted = kind === 'readinessProbe' ? undefined : LIVENESS_SERVICE;
        const asked = probe.grpc!.service || undefined;
        if (asked !== wanted) problems.push(`${name}: ${kind} asks for health service ${asked ?? "'' (readiness)"}, want ${wanted ?? "'' (readiness)"}`);
      }
      expect(problems).toEqual([]);
    });

    it('has a hardened pod with its own ServiceAccount, a writable /tmp and no service links', () => {
      const r = rendered(overlay);
      const w = deployment(r, name);
      const c = serverContainer(w);
      const problems = hardeningProblems(w);
      if (w.podSpec.serviceAccountName !== name) problems.push(`${name}: serviceAccountName is ${w.podSpec.serviceAccountName ?? 'unset'}, want ${name}`);
      const sa = r.find<{ automountServiceAccountToken?: boolean }>('ServiceAccount', name);
      if (!sa) problems.push(`${name}: no ServiceAccount ${name}`);
      else if (sa.automountServiceAccountToken !== false) problems.push(`${name}: ServiceAccount automounts its token`);
      const tmp = (c.volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
      const tmpVolume = w.podSpec.volumes?.find((v) => v.name === tmp?.name);
      if (!tmp || !tmpVolume?.emptyDir) problems.push(`${name}: /tmp is not an emptyDir mount (the root filesystem is read-only)`);
      if (w.podSpec.enableServiceLinks !== false) {
        problems.push(`${name}: enableServiceLinks must be false: service links inject <SERVICE>_PORT=tcp://..., which collides with ${spec.portEnv}`);
      }
      for (const [kind, obj] of [['Deployment', w.obj], ['pod template', { metadata: { labels: w.podLabels } }], ['Service', r.find('Service', name)]] as const) {
        const labels = (obj as { metadata?: { labels?: Record<string, string> } } | undefined)?.metadata?.labels ?? {};
        if (labels['app.kubernetes.io/name'] !== name) problems.push(`${name}: ${kind} lacks label app.kubernetes.io/name=${name}`);
      }
      if (w.selector['app.kubernetes.io/name'] !== name) problems.push(`${name}: selector does not use app.kubernetes.io/name=${name}`);
      expect(problems).toEqual([]);
    });

    it('gets the SIGTERM drain time it needs', () => {
      const w = deployment(rendered(overlay), name);
      const c = serverContainer(w);
      const preStop = c.lifecycle?.preStop;
      const sleepArgv = preStop?.exec?.command;
      const preStopSeconds = preStop?.sleep?.seconds ?? (sleepArgv?.[0] === 'sleep' ? Number(sleepArgv[1]) : 0);
      const parsed = spec.schema.safeParse(envValues(serviceEnv(overlay, spec)));
      const drainMs = parsed.success ? Number((parsed.data as Record<string, unknown>).SHUTDOWN_GRACE_MS) : NaN;
      const grace = w.podSpec.terminationGracePeriodSeconds ?? 30;
      const problems: string[] = [];
      if (!Number.isFinite(drainMs)) problems.push(`${name}: cannot read SHUTDOWN_GRACE_MS from the config`);
      else if (grace < preStopSeconds + drainMs / 1000 + 5) {
        problems.push(`${name}: terminationGracePeriodSeconds ${grace} < preStop ${preStopSeconds}s + SHUTDOWN_GRACE_MS ${drainMs / 1000}s + 5s margin: in-flight calls would be killed`);
      }
      expect(problems).toEqual([]);
    });

    it('mounts its own mTLS certificate (<service>-tls) where TLS_*_FILE point', () => {
      const r = rendered(overlay);
      const w = deployment(r, name);
      const c = serverContainer(w);
      const values = envValues(serviceEnv(overlay, spec));
      const secrets = secretsFor(overlay);
      const generators = devGeneratedSecrets();
      const problems: string[] = [];
      for (const key of ['TLS_CA_FILE', 'TLS_CERT_FILE', 'TLS_KEY_FILE']) {
        const file = values[key];
        if (!file) continue;
        const mount = (c.volumeMounts ?? []).find((m) => file.startsWith(m.mountPath.replace(/\/?$/, '/')));
        const volume = w.podSpec.volumes?.find((v) => v.name === mount?.name);
        if (!mount || !volume?.secret) {
          problems.push(`${name}: ${key}=${file} is not inside a Secret volume mount`);
          continue;
        }
        const secretName = logicalName(volume.secret.secretName ?? '', generators);
        if (secretName !== `${name}-tls`) problems.push(`${name}: ${key} comes from Secret ${secretName}, want its own ${name}-tls`);
        if (mount.readOnly !== true) problems.push(`${name}: the TLS mount ${mount.mountPath} is not readOnly`);
        if (((volume.secret.defaultMode ?? 0o644) & 0o007) !== 0) problems.push(`${name}: TLS files are readable by others (defaultMode ${(volume.secret.defaultMode ?? 0o644).toString(8)})`);
        const fileName = file.slice(mount.mountPath.replace(/\/?$/, '/').length);
        const keyInSecret = volume.secret.items?.find((i) => i.path === fileName)?.key ?? fileName;
        const data = secrets(volume.secret.secretName ?? '');
        if (data && !(keyInSecret in data)) problems.push(`${name}: ${key}=${file} needs key ${keyInSecret} in Secret ${secretName}`);
      }
      expect(problems).toEqual([]);
    });

    it('dials other Services by name on their grpc port (headless, so calls spread over pods), NATS/Redis/PostgreSQL/collector by Service, and NetworkPolicy allows each call', () => {
      const r = rendered(overlay);
      const w = deployment(r, name);
      const problems: string[] = [];
      for (const { variable, value, target } of addressTargets(overlay, spec)) {
        if (typeof target === 'string') {
          problems.push(`${name}: ${variable}=${redact(value)}: ${target}`);
          continue;
        }
        if (/_ADDR$/.test(variable)) {
          if (target.servicePort.name !== 'grpc' || target.containerPort.name !== 'grpc') {
            problems.push(`${name}: ${variable}=${value} reaches port ${target.servicePort.name ?? target.servicePort.port} of ${target.service.metadata.name}, want its grpc port`);
          }
          if (!SERVICE_NAMES.includes(target.workload.name)) problems.push(`${name}: ${variable}=${value} reaches ${target.workload.name}, which is not a WristPay service`);
          // Client-side balancing needs every pod's address from DNS, and a headless Service ignores
          // targetPort: the client dials the pod on the Service's port number.
          if (target.service.spec?.clusterIP !== 'None') problems.push(`${name}: ${variable} reaches Service ${target.service.metadata?.name}, which is not headless: its calls would pin to one pod`);
          if (target.servicePort.port !== target.containerPort.containerPort) {
            problems.push(`${name}: ${variable}: Service port ${target.servicePort.port} differs from container port ${target.containerPort.containerPort} (a headless Service does not translate ports)`);
          }
        }
        if (variable === 'OTEL_EXPORTER_OTLP_ENDPOINT' && target.workload.name !== 'otel-collector') {
          problems.push(`${name}: OTEL_EXPORTER_OTLP_ENDPOINT reaches ${target.workload.name}, want the otel-collector`);
        }
        if (variable in INFRA_BY_VARIABLE && target.workload.name !== INFRA_BY_VARIABLE[variable]) {
          problems.push(`${name}: ${variable} reaches ${target.workload.name}, want ${INFRA_BY_VARIABLE[variable]}`);
        }
        const allowed = ingressAllowed(r, w.podLabels, target);
        if (allowed !== true) {
          problems.push(`${name}: ${variable} → ${target.workload.name}:${target.containerPort.name ?? target.containerPort.containerPort} is ${allowed === false ? 'blocked by NetworkPolicy' : `not checkable: ${allowed}`}`);
        }
      }
      expect(problems).toEqual([]);
    });

    it('has the replica count and disruption budget of its overlay', () => {
      const r = rendered(overlay);
      const w = deployment(r, name);
      const replicas = (w.obj.spec as { replicas?: number }).replicas;
      const hpa = r.ofKind<IHorizontalPodAutoscaler>('HorizontalPodAutoscaler').find((h) => h.spec?.scaleTargetRef.name === name);
      const problems: string[] = [];
      if (overlay === 'dev') {
        if (replicas !== 1) problems.push(`${name}: dev replicas ${replicas ?? 'unset'}, want 1`);
        if (hpa) problems.push(`${name}: dev has HorizontalPodAutoscaler ${hpa.metadata.name}, want none`);
      } else if (AUTOSCALED.includes(name)) {
        if (!hpa) problems.push(`${name}: no HorizontalPodAutoscaler in prod`);
        else if ((hpa.spec?.minReplicas ?? 1) < 2) problems.push(`${name}: HPA minReplicas ${hpa.spec?.minReplicas ?? 1}, want >= 2`);
        if (replicas !== undefined) problems.push(`${name}: spec.replicas is set (${replicas}) although an HPA owns it: every apply would reset the scale`);
      } else if ((replicas ?? 1) < 2) {
        problems.push(`${name}: prod replicas ${replicas ?? 1}, want >= 2`);
      }
      const pdb = r.ofKind<IPodDisruptionBudget>('PodDisruptionBudget').find((p) => matchesLabels(p.spec?.selector?.matchLabels, w.podLabels));
      if (!pdb) problems.push(`${name}: no PodDisruptionBudget selects its pods`);
      expect(problems).toEqual([]);
    });
  });
});

// ---- infrastructure consistency -------------------------------------------------------------

describe.each(OVERLAYS)('k8s/overlays/%s infrastructure', (overlay) => {
  it('NATS: JetStream on, and one cluster route per StatefulSet replica (or no cluster block for one node)', () => {
    const r = rendered(overlay);
    const problems: string[] = [];
    const sts = r.find<{ spec: { replicas?: number; serviceName: string } }>('StatefulSet', 'nats');
    const conf = r.find<IConfigMap>('ConfigMap', 'nats-config')?.data?.['nats.conf'];
    if (!sts || conf === undefined) {
      expect(['no StatefulSet nats or ConfigMap nats-config with nats.conf']).toEqual([]);
      return;
    }
    const replicas = sts.spec.replicas ?? 1;
    if (!/^\s*jetstream\s*\{/m.test(conf)) problems.push('nats.conf: no jetstream block');
    const routes = [...conf.matchAll(/nats:\/\/([a-z0-9-]+)\.([a-z0-9-]+):6222/g)];
    if (replicas === 1) {
      if (/^\s*cluster\s*\{/m.test(conf)) problems.push('nats.conf has a cluster block but the StatefulSet runs 1 replica: JetStream would wait for a quorum forever');
    } else {
      if (replicas < 3) problems.push(`NATS runs ${replicas} replicas; a JetStream cluster needs 3 for a quorum that survives a loss`);
      const expected = Array.from({ length: replicas }, (_, i) => `nats-${i}.${sts.spec.serviceName}`);
      const actual = routes.map((m) => `${m[1]}.${m[2]}`);
      if (JSON.stringify(actual.sort()) !== JSON.stringify(expected.sort())) {
        problems.push(`nats.conf routes ${JSON.stringify(actual)}, want one per pod: ${JSON.stringify(expected)}`);
      }
      const headless = r.find<IService>('Service', sts.spec.serviceName);
      if (headless?.spec?.clusterIP !== 'None' || headless.spec.publishNotReadyAddresses !== true) {
        problems.push(`Service ${sts.spec.serviceName}: must be headless with publishNotReadyAddresses (peers route before they are ready)`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('NATS: no service asks for more JetStream stream replicas (NATS_STREAM_REPLICAS) than the StatefulSet runs', () => {
    const r = rendered(overlay);
    const sts = r.find<{ spec: { replicas?: number } }>('StatefulSet', 'nats');
    if (!sts) {
      expect(['no StatefulSet nats']).toEqual([]);
      return;
    }
    const servers = sts.spec.replicas ?? 1;
    const problems: string[] = [];
    for (const spec of SERVICES) {
      const parsed = spec.schema.safeParse(envValues(serviceEnv(overlay, spec)));
      if (!parsed.success) continue; // reported by the configSchema test
      const streamReplicas = Number((parsed.data as Record<string, unknown>).NATS_STREAM_REPLICAS);
      if (!(streamReplicas <= servers)) {
        problems.push(`${spec.name}: NATS_STREAM_REPLICAS is ${streamReplicas} but StatefulSet nats runs ${servers} server(s): JetStream could not place the streams`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('PostgreSQL: the init script (prod: the CloudNativePG Cluster) creates one database per owning service, owned by its role, and each DATABASE_URL matches it', () => {
    const r = rendered(overlay);
    const secrets = secretsFor(overlay);
    const problems: string[] = [];
    const init = Object.values(r.find<IConfigMap>('ConfigMap', 'postgres-init')?.data ?? {}).join('\n');
    let created = [...init.matchAll(/^\s*create_database\s+([a-z_]+)\s+"\$([A-Z_]+)"/gm)].map((m) => ({ db: m[1]!, passwordVar: m[2]! }));
    const cluster = r.find<{ spec: { bootstrap?: { initdb?: { database: string; owner: string; secret?: { name: string } } }; managed?: { roles: Array<{ name: string; login?: boolean; passwordSecret?: { name: string } }> } } }>('Cluster', 'postgres');
    if (overlay === 'prod') {
      // The Cluster's initdb database and one Database per other, each owned by a login role
      // with its password from a Secret made outside git (k8s/README.md).
      if (!cluster) problems.push('prod: no CloudNativePG Cluster postgres');
      const initdb = cluster?.spec.bootstrap?.initdb;
      const databases = [
        ...(initdb ? [{ db: initdb.database, owner: initdb.owner, secret: initdb.secret?.name }] : []),
        ...r.ofKind<{ spec: { name: string; owner: string; cluster: { name: string } } }>('Database').filter((d) => d.spec.cluster.name === 'postgres').map((d) => ({ db: d.spec.name, owner: d.spec.owner, secret: undefined as string | undefined })),
      ];
      for (const d of databases) {
        if (d.owner !== d.db) problems.push(`database ${d.db}: owned by ${d.owner}, want its own role ${d.db}`);
        const role = cluster?.spec.managed?.roles.find((x) => x.name === d.owner);
        const secret = d.secret ?? role?.passwordSecret?.name;
        if (d.db !== initdb?.database && !(role?.login && secret)) problems.push(`database ${d.db}: role ${d.owner} is not a managed login role with a passwordSecret`);
        if (secret !== `postgres-${d.db}-credentials`) problems.push(`database ${d.db}: password Secret ${secret ?? 'none'}, want postgres-${d.db}-credentials (k8s/README.md)`);
      }
      created = databases.map((d) => ({ db: d.db, passwordVar: '' }));
    }
    const postgres = workloads(r).find((w) => w.name === 'postgres');
    const postgresEnv = postgres ? resolveEnv(r, postgres.podSpec.containers[0]!, secrets, 'postgres') : undefined;
    const owners = SERVICES.filter((s) => s.database);
    for (const db of ['payments', 'registry', 'vault', 'ledger', 'alerts']) {
      if (!created.some((c) => c.db === db)) problems.push(`postgres-init does not create database ${db}`);
      if (owners.filter((s) => s.database === db).length !== 1) problems.push(`database ${db} must have exactly one owning service`);
    }
    for (const spec of owners) {
      const url = envValues(serviceEnv(overlay, spec)).DATABASE_URL;
      if (!url) {
        problems.push(`${spec.name}: no DATABASE_URL value to check`);
        continue;
      }
      const u = new URL(url);
      const db = u.pathname.replace(/^\//, '');
      if (db !== spec.database) problems.push(`${spec.name}: DATABASE_URL names database ${db}, want ${spec.database}`);
      if (u.username !== spec.database) problems.push(`${spec.name}: DATABASE_URL logs in as ${u.username}, want the owning role ${spec.database}`);
      const entry = created.find((c) => c.db === spec.database);
      const expectedPassword = entry && postgresEnv ? envValues(postgresEnv)[entry.passwordVar] : undefined;
      if (entry && expectedPassword !== undefined && decodeURIComponent(u.password) !== expectedPassword) {
        problems.push(`${spec.name}: DATABASE_URL password differs from postgres' ${entry.passwordVar}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('PostgreSQL admits exactly the services that own a database, and a service reads DATABASE_URL only if it owns one', () => {
    const r = rendered(overlay);
    const problems: string[] = [];
    const port = r.find<IService>('Service', 'postgres')?.spec?.ports?.[0]?.port;
    const target = port === undefined ? 'no Service postgres' : resolveEndpoint(r, 'postgres', port, NAMESPACE);
    if (typeof target === 'string') problems.push(`postgres: ${target}`);
    else {
      for (const spec of SERVICES) {
        const reads = schemaKeys(spec).includes('DATABASE_URL');
        if (reads !== Boolean(spec.database)) {
          problems.push(`${spec.name}: ${reads ? 'reads DATABASE_URL but owns no database' : `owns database ${spec.database} but does not read DATABASE_URL`} (DATABASES in scripts/mesh.ts)`);
        }
        const allowed = ingressAllowed(r, deployment(r, spec.name).podLabels, target);
        if (allowed !== reads) {
          problems.push(`${spec.name} → postgres: ${allowed === true ? 'allowed' : allowed === false ? 'blocked' : allowed} by NetworkPolicy, want ${reads ? 'allowed' : `blocked (services/${spec.name}/src/config.ts does not read DATABASE_URL)`}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('Redis: each service reaches its Redis (one node, or the primary its Sentinels name), and each Redis and Sentinel admits exactly the services that use it', () => {
    const r = rendered(overlay);
    const problems: string[] = [];
    const uses = new Map(SERVICES.map((spec) => [spec.name, redisUse(r, envValues(serviceEnv(overlay, spec)), NAMESPACE)]));
    for (const spec of SERVICES) {
      const use = uses.get(spec.name)!;
      const reads = schemaKeys(spec).includes('REDIS_URL');
      if (reads !== (use.form !== 'none')) problems.push(`${spec.name}: ${reads ? 'reads Redis but none is set' : 'sets Redis variables it does not read'}`);
      if (use.form === 'none') continue;
      if (typeof use.data === 'string') problems.push(`${spec.name}: Redis ${use.data}`);
      if (use.form === 'sentinel') {
        for (const s of use.sentinels) if (typeof s === 'string') problems.push(`${spec.name}: REDIS_SENTINELS ${s}`);
        const sentinelSets = new Set(use.sentinels.filter((s): s is Endpoint => typeof s !== 'string').map((s) => s.workload.name));
        if (sentinelSets.size > 1) problems.push(`${spec.name}: REDIS_SENTINELS spans workloads ${[...sentinelSets].join(', ')}, want one Sentinel set`);
      }
    }
    // Every Redis data workload and Sentinel set some service reaches, and who may reach it.
    const targets = new Map<string, { endpoint: Endpoint; clients: Set<string> }>();
    const add = (endpoint: Endpoint | string, client: string) => {
      if (typeof endpoint === 'string') return;
      const entry = targets.get(endpoint.workload.name) ?? { endpoint, clients: new Set<string>() };
      entry.clients.add(client);
      targets.set(endpoint.workload.name, entry);
    };
    for (const [name, use] of uses) {
      if (use.form === 'none') continue;
      add(use.data, name);
      if (use.form === 'sentinel') use.sentinels.forEach((s) => add(s, name));
    }
    if (targets.size === 0) problems.push('no service reaches a Redis');
    for (const [workload, { endpoint, clients }] of targets) {
      for (const spec of SERVICES) {
        const allowed = ingressAllowed(r, deployment(r, spec.name).podLabels, endpoint);
        const want = clients.has(spec.name);
        if (allowed !== want) problems.push(`${spec.name} → ${workload}: ${allowed === true ? 'allowed' : allowed === false ? 'blocked' : allowed} by NetworkPolicy, want ${want ? 'allowed' : 'blocked (it does not use it)'}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('Redis: clients use the server and Sentinel passwords, and each use has its eviction policy', () => {
    const r = rendered(overlay);
    const secrets = secretsFor(overlay);
    const problems: string[] = [];
    for (const spec of SERVICES) {
      const values = envValues(serviceEnv(overlay, spec));
      const use = redisUse(r, values, NAMESPACE);
      if (use.form === 'none' || typeof use.data === 'string') continue;
      const serverPassword = envValues(resolveEnv(r, use.data.container, secrets, use.data.workload.name)).REDIS_PASSWORD;
      if (serverPassword === undefined) problems.push(`${use.data.workload.name}: no REDIS_PASSWORD (requirepass)`);
      const clientPassword = use.form === 'url' ? decodeURIComponent(new URL(values.REDIS_URL!).password) : values.REDIS_PASSWORD;
      if (clientPassword !== serverPassword) problems.push(`${spec.name}: its Redis password differs from ${use.data.workload.name}'s REDIS_PASSWORD`);
      if (use.form === 'sentinel') {
        for (const s of use.sentinels) {
          if (typeof s === 'string') continue;
          const sentinelPassword = envValues(resolveEnv(r, s.container, secrets, s.workload.name)).REDIS_PASSWORD;
          if (values.REDIS_SENTINEL_PASSWORD !== sentinelPassword) problems.push(`${spec.name}: REDIS_SENTINEL_PASSWORD differs from ${s.workload.name}'s password`);
        }
      }
      const policy = redisSettings(r, use.data.workload)['maxmemory-policy'];
      const allowed = REDIS_POLICIES[spec.name] ?? ['noeviction'];
      if (!policy || !allowed.includes(policy)) problems.push(`${spec.name} → ${use.data.workload.name}: maxmemory-policy ${policy ?? 'unset'}, want ${allowed.join(' or ')} (k8s/README.md, Redis)`);
    }
    expect(problems).toEqual([]);
  });

  it('tokenization: the active KEK version is one of VAULT_KEKS', () => {
    const spec = SERVICES.find((s) => s.name === 'tokenization')!;
    const values = envValues(serviceEnv(overlay, spec));
    const versions = (values.VAULT_KEKS ?? '').split(',').map((entry) => entry.split(':')[0]);
    const active = values.VAULT_ACTIVE_KEY_VERSION ?? '1';
    expect(versions.includes(active) ? [] : [`VAULT_ACTIVE_KEY_VERSION ${active} is not among VAULT_KEKS versions ${versions.join(', ')}`]).toEqual([]);
  });

  it('OpenTelemetry: the collector receives OTLP/gRPC on 4317 and exports to Jaeger over OTLP', () => {
    const r = rendered(overlay);
    const problems: string[] = [];
    const raw = r.find<IConfigMap>('ConfigMap', 'otel-collector-config')?.data?.['config.yaml'];
    const config = (raw ? load(raw) : undefined) as
      | { receivers?: { otlp?: { protocols?: { grpc?: { endpoint?: string } } } }; exporters?: Record<string, { endpoint?: string }>; service?: { pipelines?: { traces?: { receivers?: string[]; exporters?: string[] } } } }
      | undefined;
    if (!config) problems.push('no otel-collector-config with config.yaml');
    else {
      if (!/:4317$/.test(config.receivers?.otlp?.protocols?.grpc?.endpoint ?? '')) problems.push('collector: no OTLP gRPC receiver on :4317');
      const traces = config.service?.pipelines?.traces;
      if (!traces?.receivers?.includes('otlp')) problems.push('collector: the traces pipeline does not receive from otlp');
      const exporters = (traces?.exporters ?? []).filter((e) => e.startsWith('otlp'));
      if (exporters.length === 0) problems.push('collector: the traces pipeline has no OTLP exporter');
      for (const exporter of exporters) {
        const hp = hostPort(config.exporters?.[exporter]?.endpoint ?? '');
        const target = hp ? resolveEndpoint(r, hp.host, hp.port, NAMESPACE) : 'no host:port endpoint';
        if (typeof target === 'string') problems.push(`collector exporter ${exporter}: ${target}`);
        else {
          if (target.workload.name !== 'jaeger') problems.push(`collector exporter ${exporter} reaches ${target.workload.name}, want jaeger`);
          const collector = workloads(r).find((w) => w.name === 'otel-collector');
          if (collector && ingressAllowed(r, collector.podLabels, target) !== true) problems.push(`collector → jaeger:${hp!.port} is blocked by NetworkPolicy`);
        }
      }
    }
    const jaeger = r.find<IService>('Service', 'jaeger');
    for (const port of [16686, 4317]) {
      if (!jaeger?.spec?.ports?.some((p) => p.port === port)) problems.push(`Service jaeger has no port ${port}`);
    }
    expect(problems).toEqual([]);
  });

  it('OpenTelemetry: the collector (contrib, one replica) tail-samples: errors, declines and step-ups, slow traces, and a share of the rest', () => {
    const r = rendered(overlay);
    const problems: string[] = [];
    type Policy = { name: string; type: string; status_code?: { status_codes?: string[] }; string_attribute?: { key?: string; values?: string[] }; latency?: { threshold_ms?: number }; probabilistic?: { sampling_percentage?: number } };
    const raw = r.find<IConfigMap>('ConfigMap', 'otel-collector-config')?.data?.['config.yaml'];
    const config = (raw ? load(raw) : {}) as { processors?: { tail_sampling?: { decision_wait?: string; policies?: Policy[] } }; service?: { pipelines?: { traces?: { processors?: string[] } } } };
    const pipeline = config.service?.pipelines?.traces?.processors ?? [];
    // After the memory limiter, before the batch: batches of sampled traces only.
    if (!(pipeline.indexOf('memory_limiter') < pipeline.indexOf('tail_sampling') && pipeline.indexOf('tail_sampling') < pipeline.indexOf('batch'))) problems.push(`traces pipeline processors ${pipeline.join(', ')}: want memory_limiter, tail_sampling, batch`);
    const policies = config.processors?.tail_sampling?.policies ?? [];
    if (!config.processors?.tail_sampling?.decision_wait) problems.push('tail_sampling: no decision_wait');
    const has = (what: string, ok: (p: Policy) => boolean) => {
      if (!policies.some(ok)) problems.push(`tail_sampling: no policy keeping ${what}`);
    };
    has('spans in ERROR', (p) => p.type === 'status_code' && (p.status_code?.status_codes ?? []).includes('ERROR'));
    has('declined and challenged payments', (p) => p.type === 'string_attribute' && p.string_attribute?.key === ATTR.decision && ['DECLINED', 'CHALLENGED'].every((v) => p.string_attribute?.values?.includes(v)));
    has('step-up answers and expiries', (p) => p.type === 'string_attribute' && p.string_attribute?.key === ATTR.challengeOutcome && ['confirmed', 'declined', 'expired'].every((v) => p.string_attribute?.values?.includes(v)));
    has('slow traces', (p) => p.type === 'latency' && (p.latency?.threshold_ms ?? 0) > 0);
    has('a share of the rest', (p) => p.type === 'probabilistic' && (p.probabilistic?.sampling_percentage ?? 0) > 0 && (p.probabilistic?.sampling_percentage ?? 0) < 100);
    const collector = deployment(r, 'otel-collector');
    const image = collector.podSpec.containers[0]?.image ?? '';
    // The core distribution has no tail_sampling processor.
    if (!/^otel\/opentelemetry-collector-contrib:/.test(image)) problems.push(`otel-collector image ${image}: want otel/opentelemetry-collector-contrib (tail_sampling)`);
    // Tail sampling decides per trace: every span of a trace must reach the same collector.
    const replicas = (collector.obj as { spec?: { replicas?: number } }).spec?.replicas ?? 1;
    if (replicas !== 1) problems.push(`otel-collector has ${replicas} replicas: tail sampling needs one (or a loadbalancing exporter by traceID in front)`);
    expect(problems).toEqual([]);
  });
});

// ---- overlay-specific -------------------------------------------------------------------------

/** The OIDs of the extended key usages mTLS needs (a server's, a client's). */
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * What is wrong with one dev certificate: its CN is not the caller identity `cn`, ca did not sign
 * it, the key is not its key, or it (or the CA) expires within a month.
 */
function leafCertificateProblems(
  where: string,
  cn: string,
  pem: { cert: X509Certificate; key: string; ca: X509Certificate },
  labels: { cert: string; key: string },
): string[] {
  const { cert, key, ca } = pem;
  const problems: string[] = [];
  if (/(^|\n)CN=([^\n]*)/.exec(cert.subject)?.[2] !== cn) {
    problems.push(`${where}: subject ${cert.subject.replace(/\n/g, ', ')}, want CN=${cn} (the caller identity)`);
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) problems.push(`${where}: ${labels.cert} is not signed by ca.crt`);
  if (!cert.checkPrivateKey(createPrivateKey(key))) problems.push(`${where}: ${labels.key} does not match ${labels.cert}`);
  if (createPublicKey(key).export({ format: 'pem', type: 'spki' }) !== cert.publicKey.export({ format: 'pem', type: 'spki' })) {
    problems.push(`${where}: ${labels.key} is not the certificate's key`);
  }
  const monthFromNow = Date.now() + 30 * 24 * 3600 * 1000;
  for (const [label, c] of [[labels.cert, cert], ['ca.crt', ca]] as const) {
    if (new Date(c.validTo).getTime() < monthFromNow) problems.push(`${where}: ${label} expires ${c.validTo}: run k8s/overlays/dev/certs/generate.sh`);
  }
  return problems;
}

describe('k8s/overlays/dev', () => {
  it('generates only clearly dev-only placeholder Secrets', () => {
    const problems: string[] = [];
    for (const s of rendered('dev').ofKind('Secret')) {
      if (s.metadata.labels?.['wristpay.dev/dev-only'] !== 'true') problems.push(`${describeObject(s)}: not labelled wristpay.dev/dev-only=true`);
    }
    const keys = decodeSecret(rendered('dev').ofKind('Secret').find((s) => logicalName(s.metadata.name, devGeneratedSecrets()) === 'tokenization-keys')!);
    for (const [key, value] of Object.entries(keys)) {
      const material = key === 'VAULT_KEKS' ? value.split(',').map((e) => e.split(':')[1] ?? '') : [value];
      for (const b64 of material) {
        if (!Buffer.from(b64, 'base64').toString('latin1').startsWith('DEV-ONLY')) problems.push(`tokenization-keys ${key}: dev key material should decode to "DEV-ONLY..." so nobody mistakes it for a real key`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('mTLS certificates: one per service, CN = service, SANs cover every name it is dialled by, signed by the shared dev CA', () => {
    const r = rendered('dev');
    const generators = devGeneratedSecrets();
    const problems: string[] = [];
    const dialledAs = new Map<string, Set<string>>();
    for (const spec of SERVICES) {
      for (const { target, value } of addressTargets('dev', spec)) {
        if (typeof target === 'string' || !SERVICE_NAMES.includes(target.workload.name)) continue;
        const set = dialledAs.get(target.workload.name) ?? new Set<string>();
        set.add(hostPort(value)!.host);
        dialledAs.set(target.workload.name, set);
      }
    }
    let sharedCa: string | undefined;
    for (const name of SERVICE_NAMES) {
      const secret = r.ofKind('Secret').find((s) => logicalName(s.metadata.name, generators) === `${name}-tls`);
      if (!secret) {
        problems.push(`no ${name}-tls Secret`);
        continue;
      }
      const data = decodeSecret(secret);
      if (!data['ca.crt'] || !data['tls.crt'] || !data['tls.key']) {
        problems.push(`${name}-tls: needs ca.crt, tls.crt and tls.key`);
        continue;
      }
      if (sharedCa !== undefined && sharedCa !== data['ca.crt']) problems.push(`${name}-tls: ca.crt differs from the other services' (mTLS needs one trust root)`);
      sharedCa ??= data['ca.crt'];
      const ca = new X509Certificate(data['ca.crt']);
      const cert = new X509Certificate(data['tls.crt']);
      problems.push(...leafCertificateProblems(`${name}-tls`, name, { cert, key: data['tls.key'], ca }, { cert: 'tls.crt', key: 'tls.key' }));
      for (const host of dialledAs.get(name) ?? []) {
        if (cert.checkHost(host) === undefined) problems.push(`${name}-tls: no SAN for "${host}", the name other services dial it by`);
      }
      if (cert.checkHost(name) === undefined) problems.push(`${name}-tls: no SAN for "${name}"`);
    }
    expect(problems).toEqual([]);
  });
});

describe('k8s/overlays/dev certs/', () => {
  it('client-only certificates for the callers outside the mesh: demo, wallet, backoffice and merchant.<id> for each demo merchant, from the services\' CA', () => {
    const dir = 'k8s/overlays/dev/certs';
    const ca = new X509Certificate(readRepoFile(`${dir}/ca.crt`));
    const problems: string[] = [];
    for (const cn of ['demo', 'wallet', 'backoffice', ...[...DEMO_MERCHANTS.keys()].map(merchantIdentity)]) {
      const files = { cert: `${cn}.crt`, key: `${cn}.key` };
      if (!fs.existsSync(path.join(REPO_ROOT, dir, files.cert)) || !fs.existsSync(path.join(REPO_ROOT, dir, files.key))) {
        problems.push(`${dir}: no ${files.cert} and ${files.key}: run k8s/overlays/dev/certs/generate.sh`);
        continue;
      }
      const cert = new X509Certificate(readRepoFile(`${dir}/${files.cert}`));
      problems.push(...leafCertificateProblems(`${dir}/${cn}`, cn, { cert, key: readRepoFile(`${dir}/${files.key}`), ca }, files));
      const usages = cert.keyUsage ?? [];
      if (!usages.includes(CLIENT_AUTH) || usages.includes(SERVER_AUTH)) problems.push(`${dir}/${files.cert}: extended key usage ${usages.join(', ') || 'any'}, want clientAuth only`);
    }
    expect(problems).toEqual([]);
  });
});

describe('k8s/overlays/prod', () => {
  it('has no secretGenerator and renders no Secret: prod secrets come from outside git', () => {
    const problems: string[] = [];
    const k = kustomization('prod');
    if (k.secretGenerator?.length) problems.push(`prod kustomization has a secretGenerator (${k.secretGenerator.map((g) => g.name).join(', ')})`);
    for (const s of rendered('prod').ofKind('Secret')) problems.push(`prod renders ${describeObject(s)}`);
    expect(problems).toEqual([]);
  });

  it('Jaeger keeps traces on a volume (badger on a PersistentVolumeClaim) for a stated time, one replica', () => {
    const r = rendered('prod');
    const problems: string[] = [];
    const jaeger = deployment(r, 'jaeger');
    const container = jaeger.podSpec.containers[0]!;
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
    if (env.SPAN_STORAGE_TYPE !== 'badger') problems.push(`SPAN_STORAGE_TYPE ${env.SPAN_STORAGE_TYPE}: want badger`);
    if (env.BADGER_EPHEMERAL !== 'false') problems.push('BADGER_EPHEMERAL is not "false": badger would keep nothing');
    if (!/^\d+h$/.test(env.BADGER_SPAN_STORE_TTL ?? '')) problems.push(`BADGER_SPAN_STORE_TTL ${env.BADGER_SPAN_STORE_TTL}: want a retention in hours`);
    const volume = jaeger.podSpec.volumes?.find((v) => v.persistentVolumeClaim);
    const mount = container.volumeMounts?.find((m) => m.name === volume?.name);
    if (!volume || !mount) problems.push('jaeger mounts no PersistentVolumeClaim');
    else {
      for (const dir of [env.BADGER_DIRECTORY_KEY, env.BADGER_DIRECTORY_VALUE]) if (!dir?.startsWith(`${mount.mountPath}/`)) problems.push(`badger directory ${dir} is not on the volume at ${mount.mountPath}`);
      if (!r.find('PersistentVolumeClaim', volume.persistentVolumeClaim!.claimName)) problems.push(`no PersistentVolumeClaim ${volume.persistentVolumeClaim!.claimName}`);
    }
    const spec = (jaeger.obj as { spec?: { replicas?: number; strategy?: { type?: string } } }).spec;
    if ((spec?.replicas ?? 1) !== 1 || spec?.strategy?.type !== 'Recreate') problems.push('jaeger: want one replica and strategy Recreate (a ReadWriteOnce volume, a local store)');
    expect(problems).toEqual([]);
  });

  it('a PodMonitor scrapes every service\'s pods on their metrics port, labelled system=wristpay', () => {
    const r = rendered('prod');
    const monitors = r.ofKind<IPodMonitor>('PodMonitor');
    const problems: string[] = [];
    for (const name of SERVICE_NAMES) {
      const w = deployment(r, name);
      const scraping = monitors.filter((m) => !m.spec.selector.matchExpressions?.length && matchesLabels(m.spec.selector.matchLabels, w.podLabels));
      if (scraping.length !== 1) {
        problems.push(`${name}: its pods are selected by ${scraping.length} PodMonitors, want 1`);
        continue;
      }
      const endpoints = scraping[0]!.spec.podMetricsEndpoints ?? [];
      if (!endpoints.some((e) => e.port !== undefined && namedPort(serverContainer(w), e.port))) problems.push(`${name}: no podMetricsEndpoint names one of its container ports`);
      if (!endpoints.every((e) => e.relabelings?.some((l) => l.targetLabel === 'system' && l.replacement === 'wristpay'))) {
        problems.push(`${name}: targets are not labelled system=wristpay (the WristPayTargetDown alert selects on it)`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('lets Prometheus (namespace monitoring) reach each service\'s metrics port through the default-deny policy', () => {
    const r = rendered('prod');
    const problems: string[] = [];
    for (const name of SERVICE_NAMES) {
      const w = deployment(r, name);
      const metrics = namedPort(serverContainer(w), 'metrics');
      const open = r
        .ofKind<INetworkPolicy>('NetworkPolicy')
        .filter((p) => matchesLabels(p.spec?.podSelector.matchLabels, w.podLabels))
        .some((p) =>
          (p.spec?.ingress ?? []).some(
            (rule) =>
              (rule.from ?? []).some((peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring' && !peer.podSelector) &&
              (rule.ports ?? []).some((port) => port.port === 'metrics' || port.port === metrics?.containerPort),
          ),
        );
      if (!open) problems.push(`${name}: no NetworkPolicy admits namespace monitoring to port metrics`);
    }
    expect(problems).toEqual([]);
  });

  it('carries the SLO alerts as a PrometheusRule identical to ops/prometheus/rules (npm run ops:render)', () => {
    const rules = rendered('prod').ofKind<IPrometheusRule>('PrometheusRule');
    expect(rules.map((x) => x.metadata.name)).toEqual(['wristpay-slos']);
    expect(rules[0]!.spec.groups).toEqual(ruleGroups());
    // The committed file is what the renderer writes today (so a reviewer reads the real thing).
    expect(fs.readFileSync(PROMETHEUS_RULE_FILE, 'utf8')).toBe(renderPrometheusRule());
  });
});

// ---- Tiltfile -----------------------------------------------------------------------------------

describe('Tiltfile', () => {
  const source = readRepoFile('Tiltfile');
  const calls = parseTopLevelCalls(source);
  const resources = new Map<string, Call>();
  for (const call of calls.filter((c) => c.name === 'k8s_resource')) {
    const name = asString(call.args[0] ?? call.kwargs.workload) ?? asString(call.kwargs.new_name);
    if (name) resources.set(name, call);
  }

  function portForwards(call: Call | undefined): Array<{ local: number; container: number }> {
    const value = call?.kwargs.port_forwards;
    const items: Value[] = value?.type === 'list' ? value.items : value ? [value] : [];
    return items.flatMap((item): Array<{ local: number; container: number }> => {
      if (item.type === 'number') return [{ local: item.value, container: item.value }];
      if (item.type === 'string') {
        const [local, container] = item.value.split(':').map(Number);
        return [{ local: local!, container: container ?? local! }];
      }
      if (item.type === 'call' && item.name === 'port_forward') {
        const local = item.args[0] ?? item.kwargs.local_port;
        const container = item.args[1] ?? item.kwargs.container_port ?? local;
        if (local?.type === 'number' && container?.type === 'number') return [{ local: local.value, container: container.value }];
      }
      return [];
    });
  }

  it('builds the one image with docker_build("wristpay", ...) and a live_update that syncs sources and runs the build', () => {
    const problems: string[] = [];
    const builds = calls.filter((c) => c.name === 'docker_build');
    if (builds.length !== 1 || asString(builds[0]!.args[0] ?? builds[0]!.kwargs.ref) !== 'wristpay') {
      problems.push(`want exactly one docker_build('wristpay', ...), found ${builds.length}`);
    } else {
      const build = builds[0]!;
      const live = build.kwargs.live_update;
      const syncs = nestedCalls(live, 'sync');
      const runs = nestedCalls(live, 'run');
      if (syncs.length === 0) problems.push('docker_build: live_update has no sync()');
      if (!runs.some((r) => /npm run build/.test(asString(r.args[0]) ?? ''))) problems.push('docker_build: live_update has no run(... npm run build ...)');
      for (const s of syncs) {
        const local = asString(s.args[0]) ?? '';
        if (!fs.existsSync(path.join(REPO_ROOT, local))) problems.push(`Tiltfile:${s.line}: sync source ${local} does not exist`);
        if (!(asString(s.args[1]) ?? '').startsWith('/app/')) problems.push(`Tiltfile:${s.line}: sync target ${asString(s.args[1])} is not under /app (the image's WORKDIR)`);
      }
      for (const required of ['./platform', './services']) {
        if (!syncs.some((s) => asString(s.args[0])?.replace(/\/$/, '') === required)) problems.push(`docker_build: live_update does not sync ${required}`);
      }
      const fallBack = nestedCalls(live, 'fall_back_on').flatMap((f) => asStringList(f.args[0]) ?? [asString(f.args[0]) ?? '']);
      for (const file of ['package.json', 'package-lock.json']) {
        if (!fallBack.some((f) => f.replace(/^\.\//, '') === file)) problems.push(`docker_build: live_update does not fall_back_on ${file} (dependencies need a new image)`);
      }
      const target = asString(build.kwargs.target);
      if (target && !new RegExp(`^FROM\\s+\\S+\\s+AS\\s+${target}\\s*$`, 'mi').test(readRepoFile('Dockerfile'))) {
        problems.push(`docker_build target "${target}" is not a stage of the Dockerfile`);
      }
    }
    const yaml = calls.filter((c) => c.name === 'k8s_yaml');
    const kustomized = yaml.flatMap((c) => nestedCalls(c.args[0], 'kustomize')).map((k) => asString(k.args[0])?.replace(/\/$/, ''));
    if (!kustomized.includes('k8s/overlays/dev')) problems.push("no k8s_yaml(kustomize('k8s/overlays/dev'))");
    expect(problems).toEqual([]);
  });

  it('every workload of the dev overlay is a k8s_resource labelled services or infra', () => {
    const problems: string[] = [];
    for (const w of workloads(rendered('dev'))) {
      const call = resources.get(w.name);
      const want = SERVICE_NAMES.includes(w.name) ? 'services' : 'infra';
      if (!call) problems.push(`no k8s_resource('${w.name}', ...)`);
      else if (JSON.stringify(asStringList(call.kwargs.labels)) !== JSON.stringify([want])) {
        problems.push(`Tiltfile:${call.line}: k8s_resource('${w.name}') labels ${JSON.stringify(asStringList(call.kwargs.labels) ?? null)}, want ['${want}']`);
      }
    }
    expect(problems).toEqual([]);
  });

  it.each(SERVICE_NAMES)('%s waits (resource_deps) for the infra and services its config points at', (name) => {
    const spec = SERVICES.find((s) => s.name === name)!;
    const call = resources.get(name);
    const problems: string[] = [];
    if (!call) {
      expect([`no k8s_resource('${name}', ...)`]).toEqual([]);
      return;
    }
    const deps = asStringList(call.kwargs.resource_deps) ?? [];
    const wanted = new Set<string>();
    for (const { variable, target } of addressTargets('dev', spec)) {
      if (typeof target === 'string' || variable === 'OTEL_EXPORTER_OTLP_ENDPOINT') continue;
      wanted.add(target.workload.name);
    }
    for (const dep of wanted) if (!deps.includes(dep)) problems.push(`Tiltfile:${call.line}: ${name} uses ${dep} but resource_deps does not list it`);
    for (const dep of deps) if (!resources.has(dep)) problems.push(`Tiltfile:${call.line}: ${name} depends on "${dep}", which is no k8s_resource`);
    expect(problems).toEqual([]);
  });

  it('forwards fixed ports: gateway 50050 and the Jaeger UI 16686', () => {
    const problems: string[] = [];
    const r = rendered('dev');
    const gatewayPort = namedPort(deployment(r, 'gateway').podSpec.containers[0]!, 'grpc')?.containerPort;
    if (!portForwards(resources.get('gateway')).some((p) => p.local === 50050 && p.container === gatewayPort)) {
      problems.push(`gateway: no port_forward 50050 → its grpc port ${gatewayPort}`);
    }
    const jaegerUi = namedPort(deployment(r, 'jaeger').podSpec.containers[0]!, 'ui')?.containerPort;
    if (!portForwards(resources.get('jaeger')).some((p) => p.local === 16686 && p.container === jaegerUi)) {
      problems.push(`jaeger: no port_forward 16686 → its UI port ${jaegerUi}`);
    }
    expect(problems).toEqual([]);
  });
});
