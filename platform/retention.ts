import type { Queryable } from './db';
import type { Logger } from './log';

/**
 * One table a service prunes: rows whose `timeColumn` is older than `retainDays` are deleted.
 * Names come from code, never from input; they are checked and quoted all the same.
 */
export interface RetentionRule {
  table: string;
  /**
   * The primary key columns. Batches are picked and deleted by key rather than by `ctid`: ctid
   * works on PostgreSQL and PGlite but not on the distributed Postgres-compatible databases the
   * ledger may move to (CockroachDB, YugabyteDB).
   */
  key: readonly string[];
  /** A timestamptz column; a row whose value is NULL is never due (NULL < cutoff is not true). */
  timeColumn: string;
  retainDays: number;
  /**
   * A further SQL condition every pruned row must meet, written in code (the outbox's
   * `published_at IS NOT NULL`). It is stated on top of the cutoff so the rule reads as the
   * guarantee it gives, not as a consequence of NULL comparison.
   */
  onlyIf?: string;
}

/** The retention settings (platform/config.ts retentionEnv) a database service has parsed. */
export interface RetentionConfig {
  RETENTION_IDEMPOTENCY_DAYS: number;
  RETENTION_OUTBOX_DAYS: number;
  RETENTION_PROCESSED_EVENTS_DAYS: number;
  RETENTION_INTERVAL_SECONDS: number;
}

/**
 * The tables of the platform migrations every database service has: idempotency keys by age,
 * and outbox rows by how long ago they were published. An unpublished outbox row is never
 * pruned, however old: it is an event the relay still owes JetStream.
 */
export function platformRetention(config: RetentionConfig): RetentionRule[] {
  return [
    { table: 'idempotency_keys', key: ['scope', 'key'], timeColumn: 'created_at', retainDays: config.RETENTION_IDEMPOTENCY_DAYS },
    { table: 'outbox', key: ['seq'], timeColumn: 'published_at', retainDays: config.RETENTION_OUTBOX_DAYS, onlyIf: 'published_at IS NOT NULL' },
  ];
}

/**
 * A service's consumer dedupe table `processed_events` (its own migration, so its primary key
 * is the service's: `['event_id']` or `['consumer', 'event_id']`), pruned by `processed_at`.
 * See RETENTION_PROCESSED_EVENTS_DAYS in platform/config.ts for why it is kept long.
 */
export function processedEventsRetention(config: RetentionConfig, key: readonly string[]): RetentionRule {
  return { table: 'processed_events', key, timeColumn: 'processed_at', retainDays: config.RETENTION_PROCESSED_EVENTS_DAYS };
}

export interface RetentionOptions {
  /** Time between the end of one run and the start of the next. */
  intervalMs: number;
  /** Most rows one DELETE removes, so no statement holds many locks or a long transaction. */
  batchSize?: number;
  /** Delay before the first run after start(); by default a minute (or the interval, if shorter). */
  firstRunMs?: number;
}

/** What one run did: rows deleted per table (also for a table that failed part way) and the tables that failed. */
export interface RetentionRun {
  deleted: Record<string, number>;
  failed: string[];
  ms: number;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

function quoted(name: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`retention: "${name}" is not a plain lower-case SQL identifier`);
  return `"${name}"`;
}

/** The DELETE for one batch of `rule`; $1 = retain days, $2 = batch size. */
function batchDelete(rule: RetentionRule): string {
  if (rule.key.length === 0) throw new Error(`retention: ${rule.table} needs its primary key columns`);
  if (!Number.isInteger(rule.retainDays) || rule.retainDays < 1) throw new Error(`retention: ${rule.table} retainDays must be a whole number of days, at least 1`);
  const table = quoted(rule.table);
  const key = rule.key.map(quoted).join(', ');
  const due = [`${quoted(rule.timeColumn)} < now() - make_interval(days => $1::int)`, ...(rule.onlyIf ? [`(${rule.onlyIf})`] : [])].join(' AND ');
  // SKIP LOCKED: replicas pruning at the same time, or a retry holding an old idempotency key
  // FOR UPDATE, are stepped around instead of waited on. The condition is repeated outside the
  // sub-select so a row changed between the pick and the delete is re-checked, not trusted.
  return `DELETE FROM ${table} WHERE (${key}) IN (SELECT ${key} FROM ${table} WHERE ${due} LIMIT $2::int FOR UPDATE SKIP LOCKED) AND ${due}`;
}

/**
 * Deletes the rows of tables that only grow (idempotency keys, published outbox rows,
 * processed-event keys) once they are older than their retention, on a timer.
 *
 * Each table is pruned in batches of at most `batchSize` rows, one short statement each, until
 * a batch comes back short. Runs never overlap (the next one is scheduled when the last one
 * ended, and `runOnce()` during a run joins it). A failing table (database down, table
 * missing) is logged and the run goes on with the next table; the next run tries again. Each run
 * writes one log line with the counts (table names and numbers only). `stop()` lets the current
 * statement finish, starts no further batch, and resolves when the run has ended.
 */
export class RetentionJob {
  private readonly rules: ReadonlyArray<{ rule: RetentionRule; sql: string }>;
  private readonly batchSize: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RetentionRun> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Queryable,
    rules: readonly RetentionRule[],
    private readonly log: Logger,
    private readonly options: RetentionOptions,
  ) {
    const tables = rules.map((r) => r.table);
    const twice = tables.find((t, i) => tables.indexOf(t) !== i);
    if (twice) throw new Error(`retention: ${twice} is listed twice`);
    this.rules = rules.map((rule) => ({ rule, sql: batchDelete(rule) }));
    this.batchSize = options.batchSize ?? 1000;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new Error('retention: batchSize must be a positive whole number');
  }

  /** Schedules the first run (see RetentionOptions.firstRunMs) and every run after it. */
  start(): void {
    this.stopped = false;
    this.schedule(this.options.firstRunMs ?? Math.min(this.options.intervalMs, 60_000));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runOnce().then(() => this.schedule(this.options.intervalMs));
    }, ms);
    // A pending prune must not keep the process alive.
    this.timer.unref();
  }

  /** Runs one pruning pass now (or joins the one in progress); never rejects. */
  runOnce(): Promise<RetentionRun> {
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  private async run(): Promise<RetentionRun> {
    const started = Date.now();
    const deleted: Record<string, number> = {};
    const failed: string[] = [];
    let firstError: unknown;
    for (const { rule, sql } of this.rules) {
      if (this.stopped) break;
      let count = 0;
      try {
        for (;;) {
          const { rowCount } = await this.db.query(sql, [rule.retainDays, this.batchSize]);
          count += rowCount;
          if (rowCount < this.batchSize || this.stopped) break;
        }
      } catch (err) {
        failed.push(rule.table);
        firstError ??= err;
      }
      deleted[rule.table] = count;
    }
    const result = { deleted, failed, ms: Date.now() - started };
    if (failed.length) this.log.warn({ err: firstError, ...result }, 'retention run failed for some tables; the next run tries again');
    else this.log.info(result, 'retention run pruned old rows');
    return result;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
