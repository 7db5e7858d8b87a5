import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { migrate, type Db, type Queryable } from '../../platform/db';
import { createLogger } from '../../platform/log';
import { platformRetention, processedEventsRetention, RetentionJob, type RetentionConfig } from '../../platform/retention';

const CONFIG: RetentionConfig = {
  RETENTION_IDEMPOTENCY_DAYS: 30,
  RETENTION_OUTBOX_DAYS: 7,
  RETENTION_PROCESSED_EVENTS_DAYS: 30,
  RETENTION_INTERVAL_SECONDS: 3600,
};
const BATCH = 100;

/** Log lines a job wrote, parsed. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(...String(chunk).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)), done()) });
  return { log: createLogger('retention-test', 'info', sink), lines };
}

async function until(what: string, condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function count(db: Queryable, sql: string): Promise<number> {
  const { rows } = await db.query<{ n: bigint }>(sql);
  return Number(rows[0]!.n);
}

/** Rows left per group, so a result says which rows stayed, not only how many. */
async function remaining(db: Queryable) {
  return {
    idempotencyKeys: (await db.query<{ key: string }>('SELECT key FROM idempotency_keys ORDER BY key')).rows.map((r) => r.key),
    outbox: (await db.query<{ tag: string; n: bigint }>("SELECT convert_from(event, 'UTF8') AS tag, count(*) AS n FROM outbox GROUP BY 1 ORDER BY 1")).rows.map((r) => `${r.tag}:${r.n}`),
    processedEvents: (await db.query<{ event_id: string }>('SELECT event_id FROM processed_events ORDER BY event_id')).rows.map((r) => r.event_id),
  };
}

/**
 * What platform/retention.ts must do, identically, on PostgreSQL and on embedded PGlite. `db`
 * is empty; the platform migrations and a processed_events table (with tokenization's
 * two-column key) are applied here. Rows are made old with UPDATE, never by waiting.
 */
export async function runRetentionScenario(db: Db) {
  const dir = mkdtempSync(join(tmpdir(), 'retention-'));
  try {
    writeFileSync(
      join(dir, '001_processed_events.sql'),
      'CREATE TABLE processed_events (consumer text NOT NULL, event_id text NOT NULL, processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, event_id));\n',
    );
    await migrate(db, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rules = [...platformRetention(CONFIG), processedEventsRetention(CONFIG, ['consumer', 'event_id'])];

  // Idempotency keys: 5 past 30 days, one at 29 days, 3 fresh.
  await db.query("INSERT INTO idempotency_keys (scope, key, request_hash) SELECT 's', 'old-' || g, '\\x00'::bytea FROM generate_series(1, 5) g");
  await db.query("INSERT INTO idempotency_keys (scope, key, request_hash) SELECT 's', 'new-' || g, '\\x00'::bytea FROM generate_series(1, 3) g");
  await db.query("INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ('s', 'day-29', '\\x00'::bytea)");
  await db.query("UPDATE idempotency_keys SET created_at = now() - interval '31 days' WHERE key LIKE 'old-%'");
  await db.query("UPDATE idempotency_keys SET created_at = now() - interval '29 days' WHERE key = 'day-29'");

  // Outbox: 250 published 8 days ago (more than two batches), 2 published just now, 3 never
  // published although created 100 days ago: those the relay still owes and must stay.
  const outbox = (tag: string, n: number) =>
    db.query(`INSERT INTO outbox (event_id, event) SELECT gen_random_uuid(), convert_to('${tag}', 'UTF8') FROM generate_series(1, ${n})`);
  await outbox('published-old', 250);
  await outbox('published-new', 2);
  await outbox('unpublished-old', 3);
  await db.query("UPDATE outbox SET published_at = now() - interval '8 days' WHERE event = convert_to('published-old', 'UTF8')");
  await db.query("UPDATE outbox SET published_at = now() WHERE event = convert_to('published-new', 'UTF8')");
  await db.query("UPDATE outbox SET created_at = now() - interval '100 days' WHERE event = convert_to('unpublished-old', 'UTF8')");

  // Processed events: 4 old, 2 fresh.
  await db.query("INSERT INTO processed_events (consumer, event_id) SELECT 'c', 'old-' || g FROM generate_series(1, 4) g");
  await db.query("INSERT INTO processed_events (consumer, event_id) SELECT 'c', 'new-' || g FROM generate_series(1, 2) g");
  await db.query("UPDATE processed_events SET processed_at = now() - interval '31 days' WHERE event_id LIKE 'old-%'");

  // One run prunes every due row, batch after batch, and keeps the rest.
  const first = capturingLogger();
  const job = new RetentionJob(db, rules, first.log, { intervalMs: 3_600_000, batchSize: BATCH });
  const concurrent = [job.runOnce(), job.runOnce()];
  const sameRun = concurrent[0] === concurrent[1];
  const firstRun = (await Promise.all(concurrent))[0]!;
  const afterFirst = await remaining(db);
  const secondRun = await job.runOnce();
  const runLogs = first.lines.map((l) => ({ level: l.level, msg: l.msg, deleted: l.deleted, failed: l.failed }));

  // A run that fails (the database refuses the first statements) is logged, and the timer's
  // next run still happens and prunes. A missing table fails alone; the others are pruned.
  await db.query("UPDATE processed_events SET processed_at = now() - interval '40 days' WHERE event_id = 'new-1'");
  let refusals = 2;
  const flaky: Queryable = {
    query: async (sql, params) => {
      if (refusals > 0) {
        refusals--;
        throw Object.assign(new Error('connection terminated unexpectedly'), { code: '57P01' });
      }
      return db.query(sql, params);
    },
  };
  const timed = capturingLogger();
  const missing = { table: 'no_such_table', key: ['id'], timeColumn: 'created_at', retainDays: 1 };
  const ticking = new RetentionJob(flaky, [rules[2]!, missing, rules[0]!], timed.log, { intervalMs: 20, firstRunMs: 0, batchSize: BATCH });
  ticking.start();
  await until('a second run', () => timed.lines.length >= 2);
  await ticking.stop();
  const linesAtStop = timed.lines.length;
  await new Promise((r) => setTimeout(r, 100));
  const timedLogs = timed.lines.slice(0, 2).map((l) => ({ level: l.level, deleted: l.deleted, failed: l.failed, errorLogged: typeof (l.err as { message?: string } | undefined)?.message === 'string' }));

  return {
    sameRun,
    firstRun: { deleted: firstRun.deleted, failed: firstRun.failed },
    afterFirst,
    secondRun: { deleted: secondRun.deleted, failed: secondRun.failed },
    runLogs,
    timedLogs,
    stopsCleanly: timed.lines.length === linesAtStop,
    afterTimed: await remaining(db),
    outboxBatchesLeftNothingDue: await count(db, "SELECT count(*) AS n FROM outbox WHERE published_at < now() - interval '7 days'"),
  };
}

/** What runRetentionScenario returns on either database. */
export const RETENTION_EXPECTED = {
  sameRun: true,
  firstRun: { deleted: { idempotency_keys: 5, outbox: 250, processed_events: 4 }, failed: [] },
  afterFirst: {
    idempotencyKeys: ['day-29', 'new-1', 'new-2', 'new-3'],
    outbox: ['published-new:2', 'unpublished-old:3'],
    processedEvents: ['new-1', 'new-2'],
  },
  secondRun: { deleted: { idempotency_keys: 0, outbox: 0, processed_events: 0 }, failed: [] },
  runLogs: [
    { level: 'info', msg: 'retention run pruned old rows', deleted: { idempotency_keys: 5, outbox: 250, processed_events: 4 }, failed: [] },
    { level: 'info', msg: 'retention run pruned old rows', deleted: { idempotency_keys: 0, outbox: 0, processed_events: 0 }, failed: [] },
  ],
  timedLogs: [
    // The first two statements are refused (processed_events, then the missing table would fail anyway).
    { level: 'warn', deleted: { processed_events: 0, no_such_table: 0, idempotency_keys: 0 }, failed: ['processed_events', 'no_such_table'], errorLogged: true },
    { level: 'warn', deleted: { processed_events: 1, no_such_table: 0, idempotency_keys: 0 }, failed: ['no_such_table'], errorLogged: true },
  ],
  stopsCleanly: true,
  afterTimed: {
    idempotencyKeys: ['day-29', 'new-1', 'new-2', 'new-3'],
    outbox: ['published-new:2', 'unpublished-old:3'],
    processedEvents: ['new-2'],
  },
  outboxBatchesLeftNothingDue: 0,
};
