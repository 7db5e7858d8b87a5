/**
 * Migrations as a pre-deploy step: the migrate tool (the prod Job's command) against a real
 * PostgreSQL and against PGlite, CREATE INDEX CONCURRENTLY outside a transaction, and a service
 * started with MIGRATE_ON_START=false refusing a schema behind its code.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectedMigrations, migrate, MigrationRefused, openDb, openServiceDb, type Db } from '../platform/db';
import { dependency, StartupError } from '../platform/service';
import { repoPath } from '../platform/paths';
import { createLogger } from '../platform/log';
import { inChildProcess } from './support/both-databases';
import { eventually } from './support/eventually';
import { freshDatabase, requireServers } from './support/servers';

const run = promisify(execFile);
const CLI = repoPath('dist', 'platform', 'migrate-cli.js');
const dir = (service: string) => repoPath('services', service, 'migrations');

/** The migrate tool as the Job runs it; resolves with its exit code and output. */
async function migrateTool(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const versions = async (db: Db) => (await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
const invalidIndexes = async (db: Db) =>
  (await db.query<{ relname: string }>("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid")).rows.map((r) => r.relname);
const indexDef = async (db: Db, name: string) => (await db.query<{ indexdef: string }>('SELECT indexdef FROM pg_indexes WHERE indexname = $1', [name])).rows[0]?.indexdef;

describe('migrations as a pre-deploy Job (real PostgreSQL)', () => {
  beforeAll(() => requireServers('PostgreSQL'));

  it('the migrate tool applies every service migration to a fresh database, then applies nothing the second time', async () => {
    const database = await freshDatabase();
    try {
      const first = await migrateTool(['settlement'], { DATABASE_URL: database.url });
      expect(first.code).toBe(0);
      const expected = expectedMigrations(dir('settlement'));
      expect(expected).toEqual(expect.arrayContaining(['platform/003_retention_indexes.sql', 'service/005_holds_by_device_day.sql']));
      const applied = first.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { migration?: string }).flatMap((l) => (l.migration ? [l.migration] : []));
      expect(applied).toEqual(expected);
      const second = await migrateTool(['settlement'], { DATABASE_URL: database.url });
      expect(second.code).toBe(0);
      expect(second.stdout).not.toContain('"migration"');
      expect(second.stdout).toContain('schema already up to date');
      expect((await migrateTool(['settlement', '--check'], { DATABASE_URL: database.url })).code).toBe(0);

      const db = await openDb({ databaseUrl: database.url, poolSize: 1 });
      try {
        expect(await versions(db)).toEqual([...expected].sort());
        // The CONCURRENTLY-built indexes exist and are valid.
        expect(await indexDef(db, 'holds_by_device_day')).toMatch(/ON public\.holds USING btree \(device_id, created_at\)/);
        expect(await indexDef(db, 'idempotency_keys_created_at')).toBeDefined();
        expect(await invalidIndexes(db)).toEqual([]);
      } finally {
        await db.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('refuses an unknown service and --check fails on an unmigrated database, changing nothing', async () => {
    const database = await freshDatabase();
    try {
      const unknown = await migrateTool(['risk'], { DATABASE_URL: database.url });
      expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringContaining('owns a database')]);
      const check = await migrateTool(['alerts', '--check'], { DATABASE_URL: database.url });
      expect(check.code).toBe(1);
      expect(check.stderr).toContain('first platform/001_outbox.sql');
      const db = await openDb({ databaseUrl: database.url, poolSize: 1 });
      try {
        expect((await db.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'")).rows).toEqual([{ n: 0 }]);
      } finally {
        await db.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('two migrators racing (two Job pods, or pods starting with MIGRATE_ON_START) apply each migration once', async () => {
    const database = await freshDatabase();
    const a = await openDb({ databaseUrl: database.url, poolSize: 2 });
    const b = await openDb({ databaseUrl: database.url, poolSize: 2 });
    try {
      const [ra, rb] = await Promise.all([migrate(a, dir('gateway')), migrate(b, dir('gateway'))]);
      expect([...ra, ...rb].sort()).toEqual([...expectedMigrations(dir('gateway'))].sort());
      expect(await invalidIndexes(a)).toEqual([]);
    } finally {
      await a.close();
      await b.close();
      await database.drop();
    }
  });

  it('rebuilds an index a failed CONCURRENTLY build left INVALID', async () => {
    const database = await freshDatabase();
    const db = await openDb({ databaseUrl: database.url, poolSize: 2 });
    try {
      await migrate(db, dir('alerts'));
      // As if 003 had died half way: its version unrecorded, an INVALID index under its name
      // (a unique build over duplicate values fails and leaves exactly that behind).
      await db.query("DELETE FROM schema_migrations WHERE version = 'platform/003_retention_indexes.sql'");
      await db.query('DROP INDEX idempotency_keys_created_at');
      await db.query("INSERT INTO idempotency_keys (scope, key, request_hash, created_at) VALUES ('s', 'a', '\\x00', '2026-01-01'), ('s', 'b', '\\x00', '2026-01-01')");
      await expect(db.query('CREATE UNIQUE INDEX CONCURRENTLY idempotency_keys_created_at ON idempotency_keys (created_at)')).rejects.toThrow(/could not create unique index/);
      expect(await invalidIndexes(db)).toEqual(['idempotency_keys_created_at']);

      expect(await migrate(db, dir('alerts'))).toEqual(['platform/003_retention_indexes.sql']);
      expect(await invalidIndexes(db)).toEqual([]);
      expect(await indexDef(db, 'idempotency_keys_created_at')).toBe('CREATE INDEX idempotency_keys_created_at ON public.idempotency_keys USING btree (created_at)');
    } finally {
      await db.close();
      await database.drop();
    }
  });

  it('a migration PostgreSQL refuses (a syntax error) ends the start naming it, instead of waiting for PostgreSQL; nothing of it is applied', async () => {
    const database = await freshDatabase();
    const db = await openDb({ databaseUrl: database.url, poolSize: 2 });
    const migrations = mkdtempSync(join(tmpdir(), 'wp-migrations-'));
    try {
      writeFileSync(join(migrations, '001_fine.sql'), 'CREATE TABLE fine (id int);');
      writeFileSync(join(migrations, '002_broken.sql'), 'CREATE TABLE broken (id int;\nCREATE TABLE after_broken (id int);');
      const refused = await migrate(db, migrations).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(MigrationRefused);
      expect(refused).toBeInstanceOf(StartupError);
      expect((refused as Error).message).toMatch(/^migration service\/002_broken\.sql was refused: syntax error .*\(SQLSTATE 42601\); nothing of it was applied$/);
      expect((await versions(db)).filter((v) => v.startsWith('service/'))).toEqual(['service/001_fine.sql']);
      expect((await db.query("SELECT to_regclass('public.after_broken') AS t")).rows[0]).toEqual({ t: null });
      // The start's wait gives up on it at once (one attempt), where an unreachable PostgreSQL is retried.
      let attempts = 0;
      const log = createLogger('migrate-test', 'silent');
      await expect(dependency(log, 'PostgreSQL', 'DATABASE_URL', async () => (attempts++, migrate(db, migrations)))).rejects.toBeInstanceOf(MigrationRefused);
      expect(attempts).toBe(1);
    } finally {
      rmSync(migrations, { recursive: true, force: true });
      await db.close();
      await database.drop();
    }
  });

  it('MIGRATE_ON_START=false: a service does not start on a schema behind its code (it waits, naming the first missing migration) and creates nothing; once the Job ran it starts', async () => {
    const database = await freshDatabase();
    const lines: Array<{ msg?: string; err?: string; variable?: string }> = [];
    const log = createLogger('migrate-test', 'warn', { write: (line: string) => void lines.push(JSON.parse(line)) });
    const config = { DATABASE_URL: database.url, PGLITE_DIR: 'memory://', MIGRATE_ON_START: false };
    const probe = await openDb({ databaseUrl: database.url, poolSize: 1 });
    const opened: Db[] = [];
    try {
      let settled = false;
      const starting = openServiceDb(config, 'tokenization', log, 1).then((db) => {
        settled = true;
        opened.push(db);
        return db;
      });
      const waiting = await eventually(() => lines.find((l) => l.msg === 'waiting for the database schema (the migrate Job) at MIGRATE_ON_START'), 5_000, 'the schema wait logged');
      expect(waiting.err).toMatch(/^schema is not at the expected version: \d+ migration\(s\) not applied, first platform\/001_outbox\.sql; run the migrate Job \(npm run migrate -- tokenization\)/);
      expect(settled).toBe(false);
      // Only checked: not even schema_migrations was created.
      expect((await probe.query("SELECT to_regclass('public.schema_migrations') AS t")).rows).toEqual([{ t: null }]);
      // The Job runs; the waiting start goes on (no restart needed).
      expect((await migrateTool(['tokenization'], { DATABASE_URL: database.url })).code).toBe(0);
      await starting;

      // One service migration missing (this release's Job has not run): waits, naming it.
      const last = expectedMigrations(dir('tokenization')).at(-1)!;
      await probe.query('DELETE FROM schema_migrations WHERE version = $1', [last]);
      lines.length = 0;
      const second = openServiceDb(config, 'tokenization', log, 1).then((db) => opened.push(db));
      await eventually(() => lines.some((l) => l.err?.includes(`first ${last}`)), 5_000, 'the missing migration named');
      await probe.query("INSERT INTO schema_migrations (version) VALUES ($1), ('service/999_next_release.sql')", [last]);
      // A newer schema than the code (the next release's Job already ran) is fine.
      await second;
      expect(opened).toHaveLength(2);
    } finally {
      for (const db of opened) await db.close();
      await probe.close();
      await database.drop();
    }
  }, 30_000);

  it('MIGRATE_ON_START=false on embedded PGlite: refuses at once with the same message (nothing to wait for)', async () => {
    const out = await inChildProcess('test/support/migrate-pglite.ts', { SERVICES: 'alerts', CHECK_ONLY: '1' });
    expect(out).toEqual({ alerts: { refused: expect.stringMatching(/^schema is not at the expected version: \d+ migration\(s\) not applied, first platform\/001_outbox\.sql; run the migrate Job \(npm run migrate -- alerts\)/) } });
  }, 60_000);
});

describe('migrations on PGlite (local runs)', () => {
  it('settlement: all migrations apply, CONCURRENTLY included, a second run applies nothing, the start-up check passes', async () => {
    const got = await inChildProcess('test/support/migrate-pglite.ts', { SERVICES: 'settlement' });
    expect(got).toEqual({ settlement: { allApplied: true, second: [], invalid: [], concurrent: ['holds_by_device_day', 'idempotency_keys_created_at', 'outbox_published_at'] } });
  }, 60_000);
});
