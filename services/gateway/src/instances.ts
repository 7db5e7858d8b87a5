import { randomUUID } from 'node:crypto';
import type { Db } from '../../../platform/db';
import type { Logger } from '../../../platform/log';

/**
 * This gateway replica's liveness in the database. A RECEIVED payment names the replica running
 * it; a retry that finds the replica has stopped beating takes the payment over at once, so a
 * crashed gateway's payments resume within a few beats instead of waiting out a lease. A clean
 * stop deletes the row, so its payments are taken over without waiting at all.
 */
export class InstanceHeartbeat {
  readonly id = randomUUID();
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<unknown> | undefined;

  constructor(
    private readonly db: Db,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /** How long without a beat before a replica counts as gone: three missed beats. */
  get staleMs(): number {
    return this.intervalMs * 3;
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      if (!this.beating) this.beating = this.beat().finally(() => (this.beating = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    try {
      await this.db.query('INSERT INTO gateway_instances (instance_id) VALUES ($1) ON CONFLICT (instance_id) DO UPDATE SET beat_at = now()', [this.id]);
    } catch (err) {
      // Missing a beat only lets a retry take over this replica's payments sooner; their
      // decisions are fenced by the attempt number, so nothing is decided twice.
      this.log.warn({ err: (err as Error).message }, 'gateway heartbeat not written');
    }
  }

  /** True while `instanceId` beats (this replica always does). */
  async alive(instanceId: string): Promise<boolean> {
    if (instanceId === this.id) return true;
    const { rowCount } = await this.db.query('SELECT 1 FROM gateway_instances WHERE instance_id = $1 AND beat_at > now() - make_interval(secs => $2::double precision / 1000)', [
      instanceId,
      this.staleMs,
    ]);
    return rowCount > 0;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.beating;
    // Replicas gone for a day are forgotten; this one leaves now.
    await this.db.query("DELETE FROM gateway_instances WHERE instance_id = $1 OR beat_at < now() - interval '1 day'", [this.id]).catch(() => undefined);
  }
}
