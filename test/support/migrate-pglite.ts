import { checkSchema, expectedMigrations, migrate, openDb, openServiceDb } from '../../platform/db';
import { createLogger } from '../../platform/log';
import { repoPath } from '../../platform/paths';

// Child-process entry for test/migrate.test.ts (PGlite cannot start inside jest): the named
// services' migrations on embedded PGlite, twice, then the start-up check; prints per service
// what was applied and which indexes ended up invalid. (Each PGlite takes seconds to start:
// the test runs settlement, whose migrations hold both kinds, in-transaction and CONCURRENTLY.)
(async () => {
  const out: Record<string, unknown> = {};
  for (const service of (process.env.SERVICES ?? 'settlement').split(',')) {
    if (process.env.CHECK_ONLY === '1') {
      // A service started with MIGRATE_ON_START=false on a fresh embedded database.
      const refused = await openServiceDb({ PGLITE_DIR: 'memory://', MIGRATE_ON_START: false }, service, createLogger(service, 'silent')).then(
        async (db) => void (await db.close()),
        (err: Error) => `${err.name}: ${err.message}`,
      );
      out[service] = { refused: typeof refused === 'string' ? refused.replace(/^StartupError: /, '') : 'started' };
      continue;
    }
    const dir = repoPath('services', service, 'migrations');
    const db = await openDb({ pgliteDir: 'memory://' });
    try {
      const first = await migrate(db, dir);
      const second = await migrate(db, dir);
      await checkSchema(db, dir, service);
      const invalid = (await db.query<{ relname: string }>('SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid')).rows.map((r) => r.relname);
      const concurrent = (await db.query<{ indexname: string }>("SELECT indexname FROM pg_indexes WHERE indexname IN ('idempotency_keys_created_at', 'outbox_published_at', 'holds_by_device_day') ORDER BY indexname")).rows.map((r) => r.indexname);
      out[service] = { allApplied: JSON.stringify(first) === JSON.stringify(expectedMigrations(dir)), second, invalid, concurrent };
    } finally {
      await db.close();
    }
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
})().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
