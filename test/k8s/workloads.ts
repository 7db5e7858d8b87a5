import type { IContainer, IContainerPort, IPodSpec, IProbe, ISecret, IService, IServicePort } from 'kubernetes-models/v1';
import type { INetworkPolicy, INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1';
import { operatorWorkloads } from './cnpg';
import { describeObject, type K8sObject, type Rendered } from './render';

/** A Deployment or StatefulSet, with the parts of its pod template the checks read. */
export interface Workload {
  obj: K8sObject;
  name: string;
  namespace: string;
  podSpec: IPodSpec;
  podLabels: Record<string, string>;
  selector: Record<string, string>;
}

export function workloads(r: Rendered): Workload[] {
  return r.objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
    .map((obj) => {
      const spec = obj.spec as {
        selector?: { matchLabels?: Record<string, string> };
        template: { metadata?: { labels?: Record<string, string> }; spec: IPodSpec };
      };
      return {
        obj,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace ?? 'default',
        podSpec: spec.template.spec,
        podLabels: spec.template.metadata?.labels ?? {},
        selector: spec.selector?.matchLabels ?? {},
      };
    });
}

/** True when every label of `selector` is on `labels` (an empty selector matches everything). */
export function matchesLabels(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

export function allContainers(podSpec: IPodSpec): IContainer[] {
  return [...(podSpec.initContainers ?? []), ...podSpec.containers];
}

// ---- configuration: env, envFrom, ConfigMaps, Secrets ----------------------------------------

/** Reads a Secret's decoded data by the name a pod references (undefined when unknown). */
export type SecretLookup = (name: string) => Record<string, string> | undefined;

/** A Secret's data, base64-decoded, merged with its stringData. */
export function decodeSecret(secret: K8sObject): Record<string, string> {
  const { data, stringData } = secret as K8sObject & Pick<ISecret, 'data' | 'stringData'>;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  for (const [k, v] of Object.entries(stringData ?? {})) out[k] = v;
  return out;
}

/** Secrets as rendered in this overlay, by exact (possibly hashed) name. */
export function renderedSecrets(r: Rendered): SecretLookup {
  return (name) => {
    const secret = r.find('Secret', name);
    return secret ? decodeSecret(secret) : undefined;
  };
}

/**
 * The logical name of a Secret a kustomize generator made (`redis-auth-5gbtm82hgm` →
 * `redis-auth`), given the generator names; other names come back unchanged.
 */
export function logicalName(name: string, generatorNames: readonly string[]): string {
  const generated = generatorNames.find((g) => name === g || new RegExp(`^${escapeRegExp(g)}-[a-z0-9]{10}$`).test(name));
  return generated ?? name;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export type EnvSource =
  | { from: 'value'; value: string }
  | { from: 'configMap'; name: string; key: string; value: string | undefined }
  | { from: 'secret'; name: string; key: string; value: string | undefined }
  | { from: 'runtime'; what: string };

export interface ResolvedEnv {
  vars: Map<string, EnvSource>;
  problems: string[];
}

/**
 * Every variable a container gets, in Kubernetes' precedence (envFrom in order, then env),
 * with its value when it can be known statically. References to ConfigMaps and Secrets that
 * do not exist, or keys they do not have, are problems unless marked optional.
 */
export function resolveEnv(r: Rendered, container: IContainer, secrets: SecretLookup, where: string): ResolvedEnv {
  const vars = new Map<string, EnvSource>();
  const problems: string[] = [];

  const configMapData = (name: string): Record<string, string> | undefined => {
    const configMap = r.find<{ data?: Record<string, string> }>('ConfigMap', name);
    return configMap ? (configMap.data ?? {}) : undefined;
  };

  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.configMapRef) {
      const data = configMapData(from.configMapRef.name ?? '');
      if (!data) {
        if (!from.configMapRef.optional) problems.push(`${where}: envFrom ConfigMap "${from.configMapRef.name}" is not in the rendered manifests`);
        continue;
      }
      for (const [key, value] of Object.entries(data)) {
        vars.set(prefix + key, { from: 'configMap', name: from.configMapRef.name!, key, value });
      }
    }
    if (from.secretRef) {
      const data = secrets(from.secretRef.name ?? '');
      if (!data) {
        if (!from.secretRef.optional) problems.push(`${where}: envFrom Secret "${from.secretRef.name}" is not provided`);
        continue;
      }
      for (const [key, value] of Object.entries(data)) {
        vars.set(prefix + key, { from: 'secret', name: from.secretRef.name!, key, value });
      }
    }
  }

  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      vars.set(e.name, { from: 'value', value: e.value ?? '' });
    } else if (e.valueFrom.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const data = configMapData(ref.name ?? '');
      if ((!data || !(ref.key in data)) && !ref.optional) {
        problems.push(`${where}: env ${e.name} reads key "${ref.key}" of ConfigMap "${ref.name}", which ${data ? 'lacks that key' : 'is not in the rendered manifests'}`);
      }
      vars.set(e.name, { from: 'configMap', name: ref.name!, key: ref.key, value: data?.[ref.key] });
    } else if (e.valueFrom.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const data = secrets(ref.name ?? '');
      if ((!data || !(ref.key in data)) && !ref.optional) {
        problems.push(`${where}: env ${e.name} reads key "${ref.key}" of Secret "${ref.name}", which ${data ? 'lacks that key' : 'is not provided'}`);
      }
      vars.set(e.name, { from: 'secret', name: ref.name!, key: ref.key, value: data?.[ref.key] });
    } else {
      vars.set(e.name, { from: 'runtime', what: e.valueFrom.fieldRef ? 'fieldRef' : 'resourceFieldRef' });
    }
  }
  return { vars, problems };
}

/** The statically known values, as a process.env-like record. */
export function envValues(env: ResolvedEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, source] of env.vars) {
    if (source.from === 'runtime') continue;
    if (source.value !== undefined) out[name] = source.value;
  }
  return out;
}

// ---- hardening -------------------------------------------------------------------------------

/**
 * What keeps a pod from meeting the hardened profile the conventions ask for (and the
 * "restricted" Pod Security Standard): non-root, read-only root filesystem, no privilege
 * escalation, ALL capabilities dropped, RuntimeDefault seccomp, requests and limits.
 */
export function hardeningProblems(w: Workload): string[] {
  const problems: string[] = [];
  const at = describeObject(w.obj);
  const pod = w.podSpec;
  const podSc = pod.securityContext ?? {};

  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) problems.push(`${at}: uses the host network, PID or IPC namespace`);
  if (pod.automountServiceAccountToken !== false) {
    problems.push(`${at}: automountServiceAccountToken must be false (no workload here calls the Kubernetes API)`);
  }
  if (podSc.runAsUser === 0) problems.push(`${at}: pod securityContext.runAsUser is 0 (root)`);
  if (podSc.runAsGroup === 0) problems.push(`${at}: pod securityContext.runAsGroup is 0 (root group)`);

  for (const c of allContainers(pod)) {
    const where = `${at} container "${c.name}"`;
    const sc = c.securityContext ?? {};
    if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) problems.push(`${where}: runAsNonRoot is not true`);
    if ((sc.runAsUser ?? podSc.runAsUser) === 0) problems.push(`${where}: runs as uid 0`);
    if (sc.privileged === true) problems.push(`${where}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where}: capabilities.drop does not include ALL`);
    if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${where}: adds capabilities ${sc.capabilities!.add!.join(', ')}`);
    const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') {
      problems.push(`${where}: seccompProfile is ${seccomp ?? 'unset'}, want RuntimeDefault`);
    }
    for (const kind of ['requests', 'limits'] as const) {
      for (const resource of ['cpu', 'memory']) {
        if (c.resources?.[kind]?.[resource] === undefined) problems.push(`${where}: no resources.${kind}.${resource}`);
      }
    }
    if (/:latest$/.test(c.image ?? '') || !/[:@]/.test(c.image?.split('/').pop() ?? '')) {
      problems.push(`${where}: image "${c.image}" has no pinned tag or digest`);
    }
  }
  return problems;
}

// ---- Services, ports, probes -----------------------------------------------------------------

export function namedPort(container: IContainer, name: string): IContainerPort | undefined {
  return (container.ports ?? []).find((p) => p.name === name);
}

/** The handler kinds set on a probe (`grpc`, `httpGet`, ...). */
export function probeHandlers(probe: IProbe): string[] {
  return (['grpc', 'httpGet', 'tcpSocket', 'exec'] as const).filter((k) => probe[k] !== undefined);
}

export interface Endpoint {
  service: K8sObject & IService;
  servicePort: IServicePort;
  workload: Workload;
  container: IContainer;
  containerPort: IContainerPort;
}

/**
 * Follows `host:port` the way a pod in `namespace` would: the host is a Service name (short or
 * with .<ns>[.svc[.cluster.local]]), the port one of its ports; the Service's selector picks
 * the workload and its targetPort the container port. Returns a readable reason on failure.
 */
export function resolveEndpoint(r: Rendered, host: string, port: number, namespace: string): Endpoint | string {
  const [name, ns, ...rest] = host.split('.');
  const suffix = rest.join('.');
  if (ns !== undefined && (ns !== namespace || !['', 'svc', 'svc.cluster.local'].includes(suffix))) {
    return `${host} is not a Service name in namespace ${namespace} (want <service>, <service>.${namespace}, ...svc or ...svc.cluster.local)`;
  }
  const service = r.objects.find(
    (o) => o.kind === 'Service' && o.metadata.name === name && (o.metadata.namespace ?? 'default') === namespace,
  ) as (K8sObject & IService) | undefined;
  if (!service) return `no Service named "${name}" in namespace ${namespace}`;
  const servicePort = (service.spec?.ports ?? []).find((p) => p.port === port);
  if (!servicePort) {
    const ports = (service.spec?.ports ?? []).map((p) => `${p.name ?? '?'}=${p.port}`).join(', ');
    return `Service ${name} has no port ${port} (it has ${ports || 'none'})`;
  }
  const selected = [...workloads(r), ...operatorWorkloads(r)].filter((w) => w.namespace === namespace && service.spec?.selector && matchesLabels(service.spec.selector, w.podLabels));
  if (selected.length !== 1) return `Service ${name} selects ${selected.length} workloads, want exactly 1`;
  const workload = selected[0]!;
  const target = servicePort.targetPort ?? servicePort.port;
  for (const container of workload.podSpec.containers) {
    const containerPort = (container.ports ?? []).find((p) => (typeof target === 'string' ? p.name === target : p.containerPort === target));
    if (containerPort) return { service, servicePort, workload, container, containerPort };
  }
  return `Service ${name} port ${port} targets "${target}", which no container of ${describeObject(workload.obj)} exposes`;
}

/** Splits `host:port`, or a URL with an explicit or well-known port. */
export function hostPort(address: string): { host: string; port: number } | undefined {
  const plain = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  if (plain) return { host: plain[1]!, port: Number(plain[2]) };
  try {
    const url = new URL(address);
    const defaults: Record<string, number> = { 'nats:': 4222, 'redis:': 6379, 'postgres:': 5432, 'postgresql:': 5432, 'http:': 80, 'https:': 443 };
    const port = url.port ? Number(url.port) : defaults[url.protocol];
    return port === undefined ? undefined : { host: url.hostname, port };
  } catch {
    return undefined;
  }
}

// ---- NetworkPolicy ---------------------------------------------------------------------------

function peerMatches(peer: INetworkPolicyPeer, sourceLabels: Record<string, string>): boolean | string {
  if (peer.namespaceSelector !== undefined) return 'namespaceSelector peers are not evaluated by this test';
  if (peer.ipBlock !== undefined) return false; // cluster pods are not matched by ipBlock here
  if (peer.podSelector?.matchExpressions?.length) return 'matchExpressions are not evaluated by this test';
  return matchesLabels(peer.podSelector?.matchLabels, sourceLabels);
}

/**
 * Whether the NetworkPolicies in the target's namespace let a pod labelled `sourceLabels`
 * reach `target` on its container port. A pod no policy selects accepts everything.
 */
export function ingressAllowed(r: Rendered, sourceLabels: Record<string, string>, target: Endpoint): boolean | string {
  const policies = r
    .ofKind<INetworkPolicy>('NetworkPolicy')
    .filter((p) => (p.metadata.namespace ?? 'default') === target.workload.namespace)
    .filter((p) => !p.spec?.podSelector.matchExpressions?.length && matchesLabels(p.spec?.podSelector.matchLabels, target.workload.podLabels))
    .filter((p) => (p.spec?.policyTypes ?? ['Ingress']).includes('Ingress'));
  if (policies.length === 0) return true;
  for (const policy of policies) {
    for (const rule of policy.spec?.ingress ?? []) {
      const fromOk =
        !rule.from || rule.from.length === 0 || rule.from.some((peer) => peerMatches(peer, sourceLabels) === true);
      const portOk =
        !rule.ports ||
        rule.ports.length === 0 ||
        rule.ports.some(
          (p) =>
            (p.protocol ?? 'TCP') === (target.containerPort.protocol ?? 'TCP') &&
            (p.port === undefined || p.port === target.containerPort.name || p.port === target.containerPort.containerPort),
        );
      if (fromOk && portOk) return true;
    }
  }
  return false;
}
