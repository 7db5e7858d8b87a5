import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool, types, type PoolClient } from 'pg';
import type { Logger } from './log';
import { repoPath } from './paths';
import { dependency, StartupError } from './service';
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
  /**
   * Runs `fn` in one transaction: commit when it resolves, roll back when it throws. With
   * `first`, that statement opens the transaction and its result is handed to `fn`: on
   * PostgreSQL it travels with BEGIN in one round trip (simple query protocol, so it takes no
   * parameters: literals only, escaped with pg's escapeLiteral, and nothing secret, since the
   * statement's text is what a trace shows).
   */
  tx<T>(fn: (q: Queryable, first?: QueryResult<Record<string, unknown>>) => Promise<T>, options?: { first?: string }): Promise<T>;
  /**
   * Runs `fn` on one connection held for its duration, outside any transaction: for statements
   * that may not run in one (CREATE INDEX CONCURRENTLY) under a session-level lock.
   */
  session<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
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
  // A server that does not answer a connect (a partition drops the SYN: no refusal comes) fails
  // the call in 3 s as UNAVAILABLE instead of holding a pool slot for the kernel's TCP timeout;
  // keepAlive finds connections whose peer vanished without a FIN.
  const pool = new Pool({ connectionString: url, max, connectionTimeoutMillis: 3_000, keepAlive: true });
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
  const on = (client: PoolClient): Queryable => ({
    query: async <R>(sql: string, params?: unknown[]) => {
      const r = await client.query(sql, params);
      return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
    },
  });
  // pg-pool listens for errors only on idle clients: a connection that breaks while checked out
  // (PostgreSQL stopped or restarted) emits 'error' with no listener, which would crash the
  // process. Here it fails the pending query instead (the query rejects with the connection
  // error, UNAVAILABLE at the edge), and the client goes back destroyed (release(err)), so the
  // pool opens a fresh one.
  const withClient = async <T>(fn: (client: PoolClient, broken: () => Error | undefined) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      return await fn(client, () => broken);
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  };
  return {
    kind: 'postgres',
    query,
    tx: (fn, options) =>
      withClient(async (client, broken) => {
        try {
          let first: QueryResult<Record<string, unknown>> | undefined;
          if (options?.first) {
            // Two statements in one simple query: pg answers with one result per statement.
            const [, opened] = (await client.query(`BEGIN; ${options.first}`)) as unknown as [unknown, { rows: Record<string, unknown>[]; rowCount: number | null }];
            first = { rows: opened.rows, rowCount: opened.rowCount ?? 0 };
          } else {
            await client.query('BEGIN');
          }
          const result = await fn(on(client), first);
          await client.query('COMMIT');
          return result;
        } catch (err) {
          if (!broken()) await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }),
    session: (fn) => withClient((client) => fn(on(client))),
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
    // In process: no round trip to save, `first` is just the transaction's first statement.
    tx: (fn, options) =>
      pg.transaction(async (tx) => {
        const q: Queryable = { query: async <R>(sql: string, params?: unknown[]) => normalise<R>(await tx.query(sql, params)) };
        return fn(q, options?.first ? await q.query(options.first) : undefined);
      }),
    // PGlite is one connection: its own query() already runs outside a transaction block.
    session: (fn) => fn({ query: async <R>(sql: string, params?: unknown[]) => normalise<R>(await pg.query(sql, params)) }),
    close: () => pg.close(),
  };
}

/** Where a service's migrations come from: the platform's shared ones, then its own. */
function migrationSources(dir: string) {
  return [
    { scope: 'platform', dir: repoPath('platform', 'migrations') },
    { scope: 'service', dir },
  ];
}

function migrationFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort();
}

/** The versions (`platform/NNN_x.sql`, `service/NNN_y.sql`) a service's code expects, in order. */
export function expectedMigrations(dir: string): string[] {
  return migrationSources(dir).flatMap((source) => migrationFiles(source.dir).map((file) => `${source.scope}/${file}`));
}

/**
 * A migration whose first line is this marker runs outside a transaction, one statement at a
 * time (still under the migration lock): CREATE INDEX CONCURRENTLY (which builds an index
 * without blocking writes to a large table) refuses to run inside a transaction block.
 * Its statements must each be safe to run again (IF NOT EXISTS), because a failure half way
 * leaves the earlier ones done and the version unrecorded.
 */
export const NO_TRANSACTION_MARKER = '-- wristpay:no-transaction';

const LOCK = "hashtext('wristpay.schema_migrations')";

/**
 * Applies the platform's shared migrations (outbox, idempotency) and then `dir`'s
 * NNN_name.sql files that have not run yet, in order, each in its own transaction (or, with
 * NO_TRANSACTION_MARKER, statement by statement), on one connection holding an advisory lock,
 * so replicas or Jobs starting together migrate once.
 */
export async function migrate(db: Db, dir: string, log?: Logger): Promise<string[]> {
  return db.session(async (q) => {
    await lockMigrations(q);
    try {
      await q.query('CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      const applied: string[] = [];
      for (const source of migrationSources(dir)) {
        for (const file of migrationFiles(source.dir)) {
          const version = `${source.scope}/${file}`;
          if ((await q.query('SELECT 1 FROM schema_migrations WHERE version = $1', [version])).rowCount > 0) continue;
          const sql = readFileSync(join(source.dir, file), 'utf8');
          const outsideTransaction = sql.startsWith(NO_TRANSACTION_MARKER);
          try {
            if (outsideTransaction) await applyOutsideTransaction(q, version, sql);
            else await applyInTransaction(q, version, sql);
          } catch (err) {
            throw refusedMigration(err, version, outsideTransaction);
          }
          applied.push(version);
          log?.info({ migration: version }, 'migration applied');
        }
      }
      return applied;
    } finally {
      await q.query(`SELECT pg_advisory_unlock(${LOCK})`);
    }
  });
}

/**
 * A migration PostgreSQL refused for what it says (a syntax error, a missing object, a constraint
 * the data breaks): starting again cannot help, so the start ends naming the file instead of
 * waiting for PostgreSQL forever (platform/service.ts dependency gives up on a StartupError).
 */
export class MigrationRefused extends StartupError {
  override readonly name: string = 'MigrationRefused';
}

// SQLSTATE classes a retry may get past: connection (08), transaction rollback (40: serialization,
// deadlock), insufficient resources (53), object not in prerequisite state (55: lock not
// available), operator intervention (57: shutdown, cannot connect now), system error (58).
const TRANSIENT_SQLSTATE_CLASSES = new Set(['08', '40', '53', '55', '57', '58']);

function refusedMigration(err: unknown, version: string, outsideTransaction: boolean): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code) || TRANSIENT_SQLSTATE_CLASSES.has(code.slice(0, 2))) return err;
  const left = outsideTransaction ? 'the statements before it stay applied (each may run again)' : 'nothing of it was applied';
  return new MigrationRefused(`migration ${version} was refused: ${(err as Error).message.split('\n')[0]} (SQLSTATE ${code}); ${left}`);
}

/**
 * Takes the session-level migration lock by polling pg_try_advisory_lock. Not pg_advisory_lock:
 * a migrator blocked in that call holds a snapshot, CREATE INDEX CONCURRENTLY in the lock
 * holder waits for every older snapshot to end, and the two deadlock.
 */
async function lockMigrations(q: Queryable): Promise<void> {
  for (;;) {
    const got = await q.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(${LOCK}) AS locked`);
    if (got.rows[0]?.locked) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function applyInTransaction(q: Queryable, version: string, sql: string): Promise<void> {
  await q.query('BEGIN');
  try {
    for (const statement of splitStatements(sql)) await q.query(statement);
    await q.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
    await q.query('COMMIT');
  } catch (err) {
    await q.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function applyOutsideTransaction(q: Queryable, version: string, sql: string): Promise<void> {
  for (const statement of splitStatements(sql)) {
    // A CONCURRENTLY build that failed (or was killed) leaves an INVALID index behind, which
    // IF NOT EXISTS would then take as done: drop it so this run builds it again.
    const index = /^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+([a-z0-9_]+)/i.exec(statement)?.[1];
    if (index) {
      const invalid = await q.query("SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1 AND c.relnamespace = 'public'::regnamespace AND NOT i.indisvalid", [index]);
      if (invalid.rowCount > 0) await q.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
    }
    await q.query(statement);
  }
  await q.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
}

/** Thrown when a service that does not migrate at start finds its schema behind its code. */
export class SchemaNotReady extends Error {
  override readonly name = 'SchemaNotReady';
}

/**
 * Checks that every migration this code expects has been applied (a newer schema, from a Job
 * run for the next release, is fine: migrations only add). Throws SchemaNotReady naming the
 * first missing version and how to apply it.
 */
export async function checkSchema(db: Db, dir: string, service: string): Promise<void> {
  const expected = expectedMigrations(dir);
  const table = await db.query<{ present: boolean }>("SELECT to_regclass('public.schema_migrations') IS NOT NULL AS present");
  const applied = new Set(table.rows[0]?.present ? (await db.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version) : []);
  const missing = expected.filter((v) => !applied.has(v));
  if (missing.length > 0) {
    throw new SchemaNotReady(`schema is not at the expected version: ${missing.length} migration(s) not applied, first ${missing[0]}; run the migrate Job (npm run migrate -- ${service}) or set MIGRATE_ON_START=true`);
  }
}

// Parameterised query() takes one statement; migrations hold several, split at a semicolon that
// ends a line. A dollar-quoted body (a PL/pgSQL function's `$$ ... $$`, `$fn$ ... $fn$`) is one
// piece whatever semicolons it holds. Whole-line `--` comments are dropped first, so a comment
// can mention `$$` or end in a semicolon without splitting anything.
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let rest = sql.replace(/^\s*--.*$/gm, '');
  for (;;) {
    const open = /\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest);
    const [first, ...others] = (open ? rest.slice(0, open.index) : rest).split(/;\s*$/m);
    current += first;
    for (const part of others) {
      statements.push(current);
      current = part;
    }
    if (!open) break;
    const close = rest.indexOf(open[0], open.index + open[0].length);
    if (close < 0) throw new Error(`unterminated dollar-quoted string ${open[0]} in a migration`);
    current += rest.slice(open.index, close + open[0].length);
    rest = rest.slice(close + open[0].length);
  }
  statements.push(current);
  return statements.map((s) => s.trim()).filter(Boolean);
}

/** The database settings a PostgreSQL-owning service reads (platform/config.ts databaseEnv). */
export interface DatabaseConfig {
  DATABASE_URL?: string | undefined;
  PGLITE_DIR: string;
  /** false in prod: the migrate Job applies migrations before the rollout; the service only checks. */
  MIGRATE_ON_START?: boolean | undefined;
}

/**
 * Opens a service's own database and brings its schema up to date (platform migrations, then
 * services/<service>/migrations). A PostgreSQL server that does not answer yet is waited for
 * (platform/service.ts dependency); an embedded database that cannot be opened stops the start
 * with one line naming PGLITE_DIR. With MIGRATE_ON_START=false (prod: the migrate Job applies
 * them before the rollout) it only checks the schema, and while it is behind waits the same way,
 * NOT_SERVING, logging the first missing migration, until the Job has applied it.
 */
export async function openServiceDb(config: DatabaseConfig, service: string, log: Logger, poolSize?: number): Promise<Db> {
  const dir = repoPath('services', service, 'migrations');
  const migrateOnStart = config.MIGRATE_ON_START !== false;
  const open = async () => {
    const db = await openDb({ databaseUrl: config.DATABASE_URL, pgliteDir: config.PGLITE_DIR, poolSize, name: service });
    try {
      if (migrateOnStart) await migrate(db, dir, log);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
    return db;
  };
  if (config.DATABASE_URL) {
    const db = await dependency(log, 'PostgreSQL', 'DATABASE_URL', open);
    if (migrateOnStart) return db;
    try {
      // Its own wait, so the log says what is missing (the schema), not that PostgreSQL is down.
      await dependency(log, 'the database schema (the migrate Job)', 'MIGRATE_ON_START', () => checkSchema(db, dir, service));
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
    return db;
  }
  let db: Db;
  try {
    db = await open();
  } catch (err) {
    if (err instanceof MigrationRefused) throw err;
    throw new StartupError(`cannot open the embedded database at PGLITE_DIR: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!migrateOnStart) {
    try {
      await checkSchema(db, dir, service);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw new StartupError((err as Error).message);
    }
  }
  return db;
}
