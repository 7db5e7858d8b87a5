/**
 * CPU a mesh run used, per process: each service process (its pid from the harness), PostgreSQL
 * (every postgres process: the postmaster, its background processes and the mesh's backends, but
 * not the backends of other databases on the shared server), nats-server and redis-server, this
 * bench process, and the whole machine (/proc/stat).
 */
import { Client } from 'pg';
import type { BenchMesh } from './harness';
import { ADMIN_URL } from './harness';
import { cpuBetween, cpuByPid, machineBusySeconds, machineJiffies, pidsByComm } from './machine';

export interface CpuSnapshot {
  services: Map<string, Map<number, number>>;
  servers: Map<string, Map<number, number>>;
  client: number;
  machine: { busy: number; total: number };
}

/** Pids of client backends connected to a database other than `databases` (other work on the shared server). */
async function foreignBackends(databases: string[]): Promise<Set<number>> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    const { rows } = await c.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND NOT (datname = ANY($1::text[]))", [databases]);
    return new Set(rows.map((r) => r.pid));
  } finally {
    await c.end();
  }
}

export async function cpuSnapshot(mesh: Pick<BenchMesh, 'processes' | 'databaseNames'>): Promise<CpuSnapshot> {
  const foreign = await foreignBackends(mesh.databaseNames);
  const usage = process.cpuUsage();
  return {
    services: new Map(mesh.processes.map((p) => [p.name, cpuByPid([p.pid])])),
    servers: new Map([
      ['postgres', cpuByPid(pidsByComm('postgres').filter((pid) => !foreign.has(pid)))],
      ['nats-server', cpuByPid(pidsByComm('nats-server'))],
      ['redis-server', cpuByPid(pidsByComm('redis-server'))],
    ]),
    client: (usage.user + usage.system) / 1e6,
    machine: machineJiffies(),
  };
}

/**
 * CPU ms per payment between two snapshots: per service and server process, their sum, the bench
 * client, and the machine. The processes counted are `after`'s (one that started in between counts
 * from zero; one that ended in between is lost).
 */
export function cpuPerPayment(before: CpuSnapshot, after: CpuSnapshot, payments: number): { perProcessMs: Record<string, number>; sumMs: number; clientMs: number; machineMs: number } {
  const ms = (seconds: number) => (seconds * 1000) / payments;
  const perProcessMs: Record<string, number> = {};
  for (const [name, pids] of [...after.services, ...after.servers]) perProcessMs[name] = ms(cpuBetween(before.services.get(name) ?? before.servers.get(name) ?? new Map(), pids));
  return {
    perProcessMs,
    sumMs: Object.values(perProcessMs).reduce((a, b) => a + b, 0),
    clientMs: ms(after.client - before.client),
    machineMs: ms(machineBusySeconds(before.machine, after.machine)),
  };
}
