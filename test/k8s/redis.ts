/**
 * Reading the Redis deployments of a rendered overlay: the settings a data node runs with (its
 * argv and the redis.conf of a mounted ConfigMap), the masters the Sentinels monitor
 * (sentinel.conf), and where a service's Redis variables lead (REDIS_URL, or REDIS_SENTINELS +
 * REDIS_MASTER_NAME, the two forms platform/config.ts checkRedisEnv accepts).
 */
import type { IConfigMap } from 'kubernetes-models/v1';
import type { Rendered } from './render';
import { hostPort, resolveEndpoint, workloads, type Endpoint, type Workload } from './workloads';

/** `directive args...` lines of a redis.conf / sentinel.conf (comments and blanks dropped). */
export function confLines(text: string): string[][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(/\s+/));
}

/** The data of every ConfigMap a pod mounts as a volume. */
function mountedConfigMaps(r: Rendered, w: Workload): Array<Record<string, string>> {
  return (w.podSpec.volumes ?? [])
    .map((v) => v.configMap?.name)
    .filter((n): n is string => Boolean(n))
    .map((n) => r.find<IConfigMap>('ConfigMap', n)?.data ?? {});
}

/**
 * The settings a Redis data node runs with: the mounted redis.conf, then `--name value` flags of
 * its first container's command line (which win, as in redis-server). Last occurrence wins.
 */
export function redisSettings(r: Rendered, w: Workload): Record<string, string> {
  const out: Record<string, string> = {};
  for (const data of mountedConfigMaps(r, w)) {
    for (const [directive, ...args] of confLines(data['redis.conf'] ?? '')) out[directive!.toLowerCase()] = args.join(' ');
  }
  const c = w.podSpec.containers[0]!;
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  argv.forEach((a, i) => {
    if (a.startsWith('--') && i + 1 < argv.length) out[a.slice(2).toLowerCase()] = argv[i + 1]!;
  });
  return out;
}

/** Bytes of a Redis memory size (`1gb`, `200mb`, `512000`): Redis' units, 1gb = 2^30. */
export function redisBytes(size: string): number {
  const m = /^(\d+)(b|k|kb|m|mb|g|gb)?$/i.exec(size.trim());
  if (!m) return NaN;
  const unit = (m[2] ?? 'b').toLowerCase();
  const factor: Record<string, number> = { b: 1, k: 1000, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 };
  return Number(m[1]) * factor[unit]!;
}

/** Bytes of a Kubernetes quantity (`2Gi`, `512Mi`, `1G`). */
export function quantityBytes(q: string | number | undefined): number {
  if (q === undefined) return NaN;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return NaN;
  const factor: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * factor[m[2] ?? '']!;
}

export interface SentinelMonitor {
  name: string;
  host: string;
  port: number;
  quorum: number;
  /** Other `sentinel <option> <name> <value>` settings of this master. */
  options: Record<string, string>;
}

/** A Sentinel workload (its pods run redis-server --sentinel from a mounted sentinel.conf) and the masters it monitors. */
export interface Sentinels {
  workload: Workload;
  monitors: SentinelMonitor[];
  /** The static sentinel.conf as shipped. */
  conf: string;
}

export function sentinelsOf(r: Rendered): Sentinels[] {
  const out: Sentinels[] = [];
  for (const w of workloads(r)) {
    const conf = mountedConfigMaps(r, w).find((d) => d['sentinel.conf'] !== undefined)?.['sentinel.conf'];
    if (conf === undefined) continue;
    const lines = confLines(conf);
    const monitors = lines
      .filter((l) => l[0] === 'sentinel' && l[1] === 'monitor')
      .map(([, , name, host, port, quorum]) => ({ name: name!, host: host!, port: Number(port), quorum: Number(quorum), options: {} as Record<string, string> }));
    for (const l of lines) {
      const m = l[0] === 'sentinel' && l[1] !== 'monitor' && l.length === 4 ? monitors.find((x) => x.name === l[2]) : undefined;
      if (m) m.options[l[1]!] = l[3]!;
    }
    out.push({ workload: w, monitors, conf });
  }
  return out;
}

/**
 * Resolves `host:port` as a pod in `namespace` would: a Service name (resolveEndpoint), or a
 * StatefulSet pod's stable name `<statefulset>-<i>.<governing service>` with i < replicas.
 */
export function resolveAddress(r: Rendered, host: string, port: number, namespace: string): Endpoint | string {
  const m = /^([a-z0-9-]+)-(\d+)\.([a-z0-9-]+)$/.exec(host);
  if (m) {
    const [, set, ordinal, service] = m;
    const sts = workloads(r).find((w) => w.obj.kind === 'StatefulSet' && w.name === set && w.namespace === namespace);
    if (!sts) return `${host}: no StatefulSet ${set}`;
    const spec = sts.obj.spec as { serviceName?: string; replicas?: number };
    if (spec.serviceName !== service) return `${host}: StatefulSet ${set} is governed by Service ${spec.serviceName}, not ${service}`;
    if (Number(ordinal) >= (spec.replicas ?? 1)) return `${host}: StatefulSet ${set} has ${spec.replicas ?? 1} pods, no ordinal ${ordinal}`;
    const target = resolveEndpoint(r, service!, port, namespace);
    if (typeof target !== 'string' && target.workload.name !== set) return `${host}: Service ${service} selects ${target.workload.name}, not ${set}`;
    return target;
  }
  return resolveEndpoint(r, host, port, namespace);
}

/** Where a service's Redis variables lead. */
export type RedisUse =
  | { form: 'none' }
  | { form: 'url'; data: Endpoint | string }
  | { form: 'sentinel'; sentinels: Array<Endpoint | string>; master: string; monitor?: SentinelMonitor; data: Endpoint | string };

export function redisUse(r: Rendered, values: Record<string, string>, namespace: string): RedisUse {
  if (values.REDIS_SENTINELS) {
    const sentinels = values.REDIS_SENTINELS.split(',').map((a) => {
      const hp = hostPort(a.trim());
      return hp ? resolveAddress(r, hp.host, hp.port, namespace) : `REDIS_SENTINELS entry "${a}" is not host:port`;
    });
    const master = values.REDIS_MASTER_NAME ?? '';
    // The master as the Sentinels reached (all one workload, else a problem elsewhere) monitor it.
    const sentinelWorkload = sentinels.find((s): s is Endpoint => typeof s !== 'string')?.workload;
    const monitor = sentinelsOf(r)
      .find((s) => s.workload.name === sentinelWorkload?.name)
      ?.monitors.find((m) => m.name === master);
    const data = monitor ? resolveAddress(r, monitor.host, monitor.port, namespace) : `no Sentinel reached by REDIS_SENTINELS monitors a master named "${master}"`;
    return { form: 'sentinel', sentinels, master, monitor, data };
  }
  if (values.REDIS_URL) {
    const hp = hostPort(values.REDIS_URL);
    return { form: 'url', data: hp ? resolveEndpoint(r, hp.host, hp.port, namespace) : 'REDIS_URL has no host:port' };
  }
  return { form: 'none' };
}
