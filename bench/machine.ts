/**
 * What the machine's processes used, from /proc: CPU time of any process (by pid, so one that
 * started between two readings counts from zero), the processes of a server by command name,
 * the whole machine's busy time, and a process's resident memory.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { CLK_TCK, processCpuSeconds } from './load';

/** All cores' busy and total jiffies since boot (first line of /proc/stat; idle and iowait count as not busy). */
export function machineJiffies(): { busy: number; total: number } {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = values.map(Number) as number[];
  const total = user! + nice! + system! + idle! + iowait! + irq! + softirq! + steal!;
  return { busy: total - idle! - iowait!, total };
}

/** CPU seconds the whole machine (every core) was busy between two machineJiffies readings. */
export const machineBusySeconds = (before: { busy: number }, after: { busy: number }): number => (after.busy - before.busy) / CLK_TCK;

/** Pids of every process whose command name (/proc/<pid>/comm) is `comm`: e.g. all of PostgreSQL's, backends included. */
export function pidsByComm(comm: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) pids.push(Number(d));
    } catch {
      // ended while listing
    }
  }
  return pids;
}

/** CPU seconds so far of each of `pids` still running (an ended one is left out). */
export function cpuByPid(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      out.set(pid, processCpuSeconds(pid));
    } catch {
      // ended
    }
  }
  return out;
}

/**
 * CPU seconds used between two cpuByPid readings by the processes of the second: a process absent
 * from the first started in between and counts from zero. One that ended in between is lost
 * (the benches keep their pools' connections open, so few do).
 */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, seconds] of after) sum += seconds - (before.get(pid) ?? 0);
  return sum;
}

/** Resident memory of a process now (VmRSS of /proc/<pid>/status), in MiB. */
export function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  if (!line) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(line.split(/\s+/)[1]) / 1024;
}
