// Applies one service's migrations (the platform's shared ones, then services/<service>/migrations)
// with the same code the services run at start: the pre-deploy Job in prod, where services run
// with MIGRATE_ON_START=false.
//   npm run migrate -- <service> [--check]        (in the image: node dist/platform/migrate-cli.js <service>)
// DATABASE_URL (or PGLITE_DIR) as the service has it. --check applies nothing and exits 1 when a
// migration is missing. Idempotent: a second run applies nothing.
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { databaseEnv, loadConfig } from './config';
import { checkSchema, expectedMigrations, migrate, openDb } from './db';
import { createLogger } from './log';
import { repoPath } from './paths';

async function main(argv: string[]): Promise<number> {
  const service = argv.find((a) => !a.startsWith('--'));
  const check = argv.includes('--check');
  const dir = service && /^[a-z][a-z-]*$/.test(service) ? repoPath('services', service, 'migrations') : undefined;
  if (!service || !dir || !existsSync(dir)) {
    process.stderr.write(`usage: npm run migrate -- <service> [--check]; <service> is one that owns a database (it has services/<service>/migrations)\n`);
    return 2;
  }
  const config = loadConfig(z.object(databaseEnv));
  const log = createLogger(`migrate-${service}`);
  const db = await openDb({ databaseUrl: config.DATABASE_URL, pgliteDir: config.PGLITE_DIR, poolSize: 2 });
  try {
    if (check) {
      await checkSchema(db, dir, service);
      log.info({ service, versions: expectedMigrations(dir).length }, 'schema is at the expected version');
      return 0;
    }
    const applied = await migrate(db, dir, log);
    log.info({ service, applied: applied.length, expected: expectedMigrations(dir).length }, applied.length ? 'migrations applied' : 'schema already up to date');
    return 0;
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // One line, never a URL (it may hold a password): the message names what failed.
    process.stderr.write(`migrate: ${(err as Error).message.split('\n')[0]}\n`);
    process.exit(1);
  },
);
