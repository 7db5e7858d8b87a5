import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool, types } from 'pg';
import type { Logger } from './log';
import { repoPath } from './paths';
import { dependency } from './service';
import { METRIC, observeGauges } from './telemetry/metrics';

// int8 arrives as a string from pg and as bigint from PGlite; money is int64, so make both bigint.
types.setTypeParser(types.builtins.INT8, (value) => BigInt(value));

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

/** Something SQL can be sent to: the database itself or one open transaction. */
export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<R>>;
}

/**
 * A service's database: a PostgreSQL pool when DATABASE_URL is set, embedded PGlite otherwise.
 * Store code is written once against this interface and tested on both.
 */
export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction: commit when it resolves, roll back when it throws. */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DbOptions {
  databaseUrl?: string;
  pgliteDir?: string;
  poolSize?: number;
  /** The pool's name in metrics (db.client.connection.pool.name): the service that owns it. */
  name?: string;
}

/** Opens the service database named by config (see DbOptions). */
export async function openDb(options: DbOptions): Promise<Db> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options.poolSize ?? 10, options.name ?? 'default') : openPglite(options.pgliteDir ?? 'memory://');
}

function openPostgres(url: string, max: number, name: string): Db {
  const pool = new Pool({ connectionString: url, max });
  // An idle client losing its connection must not crash the service; the pool replaces it.
  pool.on('error', () => undefined);
  // The pool as the OTel database semantic conventions name it: connections by state, callers
  // waiting for one (a saturated pool shows here before it shows as latency), and the maximum.
  const unobserve = observeGauges(
    [
      { name: METRIC.dbConnections, description: 'PostgreSQL pool connections by state (idle, used)', integer: true },
      { name: METRIC.dbPendingRequests, description: 'Queries waiting for a pool connection', integer: true },
      { name: METRIC.dbConnectionsMax, description: 'The pool size', integer: true },
    ],
    (record) => {
      const pool_ = { 'db.client.connection.pool.name': name };
      record(METRIC.dbConnections, pool.idleCount, { ...pool_, 'db.client.connection.state': 'idle' });
      record(METRIC.dbConnections, pool.totalCount - pool.idleCount, { ...pool_, 'db.client.connection.state': 'used' });
      record(METRIC.dbPendingRequests, pool.waitingCount, pool_);
      record(METRIC.dbConnectionsMax, max, pool_);
    },
  );
  const query = async <R>(sql: string, params?: unknown[]) => {
    const r = await pool.query(sql, params);
    return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
  };
  return {
    kind: 'postgres',
    query,
    async tx(fn) {
      const client = await pool.connect();
      // pg-pool listens for errors only on idle clients: a connection that breaks while checked
      // out (PostgreSQL stopped or restarted) emits 'error' with no listener, which would crash
      // the process. Here it fails this transaction's pending query instead (the query rejects
      // with the connection error, UNAVAILABLE at the edge), and the client is discarded.
      let broken: Error | undefined;
      const onError = (err: Error) => {
        broken = err;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: async <R>(sql: string, params?: unknown[]) => {
            const r = await client.query(sql, params);
            return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
          },
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        if (!broken) await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.off('error', onError);
        // A broken client goes back destroyed (release(err)), so the pool opens a fresh one.
        client.release(broken);
      }
    },
    close: () => {
      unobserve();
      return pool.end();
    },
  };
}

async function openPglite(dataDir: string): Promise<Db> {
  // Loaded lazily: the WASM build costs start-up time that PostgreSQL users should not pay.
  const { PGlite } = await import('@electric-sql/pglite');
  if (!dataDir.includes('://')) mkdirSync(dataDir, { recursive: true });
  // Same int8 contract as the pg pool: always bigint (PGlite alone gives a number when it fits).
  const pg = await PGlite.create(dataDir, { parsers: { 20: (value: string) => BigInt(value) } });
  const normalise = <R>(r: { rows: unknown[]; affectedRows?: number }) => ({
    rows: r.rows as R[],
    rowCount: r.affectedRows || r.rows.length,
  });
  return {
    kind: 'pglite',
    query: async <R>(sql: string, params?: unknown[]) => normalise<R>(await pg.query(sql, params)),
    tx: (fn) =>
      pg.transaction((tx) => fn({ query: async <R>(sql: string, params?: unknown[]) => normalise<R>(await tx.query(sql, params)) })),
    close: () => pg.close(),
  };
}

/**
 * Applies the platform's shared migrations (outbox, idempotency) and then `dir`'s
 * NNN_name.sql files that have not run yet, in order, each in its own transaction, under an
 * advisory lock so replicas starting together migrate once.
 */
export async function migrate(db: Db, dir: string, log?: Logger): Promise<string[]> {
  const sources = [
    { scope: 'platform', dir: repoPath('platform', 'migrations') },
    { scope: 'service', dir },
  ];
  await db.query('CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
  const applied: string[] = [];
  for (const source of sources) {
    const files = readdirSync(source.dir)
      .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
      .sort();
    for (const file of files) {
      const version = `${source.scope}/${file}`;
      const done = await db.tx(async (q) => {
        await q.query("SELECT pg_advisory_xact_lock(hashtext('wristpay.schema_migrations'))");
        const seen = await q.query('SELECT 1 FROM schema_migrations WHERE version = $1', [version]);
        if (seen.rowCount > 0) return false;
        for (const statement of splitStatements(readFileSync(join(source.dir, file), 'utf8'))) await q.query(statement);
        await q.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
        return true;
      });
      if (done) {
        applied.push(version);
        log?.info({ migration: version }, 'migration applied');
      }
    }
  }
  return applied;
}

// Parameterised query() takes one statement; migrations hold several. Migrations use no
// dollar-quoted bodies, so splitting on semicolons at line ends is enough.
function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter(Boolean);
}

/** The database settings a PostgreSQL-owning service reads (platform/config.ts databaseEnv). */
export interface DatabaseConfig {
  DATABASE_URL?: string | undefined;
  PGLITE_DIR: string;
}

/**
 * Opens a service's own database and brings its schema up to date (platform migrations, then
 * services/<service>/migrations). A failure names the variable to fix and stops the start.
 */
export async function openServiceDb(config: DatabaseConfig, service: string, log: Logger, poolSize?: number): Promise<Db> {
  return dependency('PostgreSQL', config.DATABASE_URL ? 'DATABASE_URL' : 'PGLITE_DIR', async () => {
    const db = await openDb({ databaseUrl: config.DATABASE_URL, pgliteDir: config.PGLITE_DIR, poolSize, name: service });
    try {
      await migrate(db, repoPath('services', service, 'migrations'), log);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
    return db;
  });
}
