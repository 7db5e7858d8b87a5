import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { loadAll } from 'js-yaml';
import { cnpgProblems } from './cnpg';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export const OVERLAYS = ['dev', 'prod'] as const;
export type Overlay = (typeof OVERLAYS)[number];

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** `Kind/name` (and namespace when set), the way the messages name an object. */
export function describeObject(obj: Pick<K8sObject, 'kind' | 'metadata'>): string {
  const ns = obj.metadata.namespace ? ` (namespace ${obj.metadata.namespace})` : '';
  return `${obj.kind}/${obj.metadata.name}${ns}`;
}

/**
 * Runs `kubectl kustomize k8s/overlays/<overlay>` and parses every document. Throws a message
 * that says what to install when kubectl is missing, and kustomize's own error otherwise.
 */
export function renderOverlay(overlay: Overlay): K8sObject[] {
  const kubectl = process.env.KUBECTL ?? 'kubectl';
  const dir = path.join(REPO_ROOT, 'k8s', 'overlays', overlay);
  let output: string;
  try {
    output = execFileSync(kubectl, ['kustomize', dir], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; status?: number | null };
    if (e.code === 'ENOENT') {
      throw new Error(
        `kubectl not found (looked for "${kubectl}" on PATH). These tests render k8s/overlays/${overlay} ` +
          'with `kubectl kustomize`: install kubectl >= 1.27 (kustomize is built in), or set ' +
          'KUBECTL=/path/to/kubectl.',
      );
    }
    throw new Error(
      `\`kubectl kustomize k8s/overlays/${overlay}\` failed (exit ${e.status ?? '?'}):\n${(e.stderr ?? e.message).trim()}`,
    );
  }

  const objects: K8sObject[] = [];
  loadAll(output).forEach((doc, index) => {
    if (doc === null || doc === undefined) return;
    const candidate = doc as Partial<K8sObject>;
    if (
      typeof candidate !== 'object' ||
      typeof candidate.apiVersion !== 'string' ||
      typeof candidate.kind !== 'string' ||
      typeof candidate.metadata?.name !== 'string'
    ) {
      throw new Error(`k8s/overlays/${overlay}: document #${index + 1} has no apiVersion, kind or metadata.name`);
    }
    objects.push(candidate as K8sObject);
  });
  return objects;
}

type ModelClass = new (data: unknown) => { validate(): void };

/**
 * The kubernetes-models class for an apiVersion/kind (`apps/v1` + `Deployment` →
 * kubernetes-models/apps/v1 Deployment), or undefined when the package does not know it.
 */
export function modelClassFor(apiVersion: string, kind: string): ModelClass | undefined {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
  if (!/^[a-z0-9.]*$/.test(group!) || !/^v[0-9a-z]+$/.test(version!)) return undefined;
  // The prometheus-operator's kinds (PodMonitor, PrometheusRule) come from their own package.
  const modulePath =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}`
      : group
        ? `kubernetes-models/${group}/${version}`
        : `kubernetes-models/${version}`;
  let mod: Record<string, unknown>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(modulePath) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const candidate = mod[kind] as (ModelClass & { apiVersion?: string; kind?: string }) | undefined;
  if (typeof candidate !== 'function' || candidate.apiVersion !== apiVersion || candidate.kind !== kind) {
    return undefined;
  }
  return candidate;
}

/**
 * Kustomize writes generated Secret data as MIME-style base64 wrapped at 76 columns; the API
 * server decodes it ignoring the line breaks (Go's base64 does), but the schema's "byte"
 * format does not, so the breaks are removed before validating.
 */
function forValidation(obj: K8sObject): K8sObject {
  const field = obj.kind === 'Secret' ? 'data' : obj.kind === 'ConfigMap' ? 'binaryData' : undefined;
  const data = field ? (obj[field] as Record<string, unknown> | undefined) : undefined;
  if (!field || !data) return obj;
  const unwrapped = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, typeof v === 'string' ? v.replace(/[\r\n]/g, '') : v]));
  return { ...obj, [field]: unwrapped };
}

/** Schema problems of one object, as readable lines (empty when valid). */
export function schemaProblems(obj: K8sObject): string[] {
  // CloudNativePG kinds are not in kubernetes-models: their own schema (test/k8s/cnpg.ts).
  const cnpg = cnpgProblems(obj);
  if (cnpg) return cnpg;
  const Model = modelClassFor(obj.apiVersion, obj.kind);
  if (!Model) {
    return [`${describeObject(obj)}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind} (not in kubernetes-models)`];
  }
  try {
    new Model(forValidation(obj)).validate();
    return [];
  } catch (err) {
    return [`${describeObject(obj)}: ${(err as Error).message}`];
  }
}

/** Looks objects up by kind and name in one rendered overlay. */
export class Rendered {
  constructor(
    readonly overlay: Overlay,
    readonly objects: K8sObject[],
  ) {}

  ofKind<T = K8sObject>(kind: string): Array<K8sObject & T> {
    return this.objects.filter((o) => o.kind === kind) as Array<K8sObject & T>;
  }

  find<T = K8sObject>(kind: string, name: string): (K8sObject & T) | undefined {
    return this.objects.find((o) => o.kind === kind && o.metadata.name === name) as (K8sObject & T) | undefined;
  }
}
