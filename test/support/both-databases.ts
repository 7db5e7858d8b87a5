import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openDb, type Db } from '../../platform/db';
import { repoRoot } from '../../platform/paths';
import { freshDatabase, requireServers } from './servers';

/** Runs store code against a fresh database on the real PostgreSQL, dropped afterwards. */
export async function onFreshPostgres<T>(run: (db: Db) => Promise<T>): Promise<T> {
  await requireServers('PostgreSQL');
  const database = await freshDatabase();
  const db = await openDb({ databaseUrl: database.url, poolSize: 2 });
  try {
    return await run(db);
  } finally {
    await db.close();
    await database.drop();
  }
}

/**
 * Runs a script under plain node (TypeScript compiled by SWC, see register-ts.js) with no
 * DATABASE_URL, and returns the JSON of its last stdout line. PGlite cannot start inside jest's
 * sandbox (it dynamically imports node builtins), so embedded-database runs go through here.
 */
export async function inChildProcess(script: string, env: Record<string, string> = {}, timeoutMs = 110_000): Promise<unknown> {
  const { stdout } = await promisify(execFile)(process.execPath, ['-r', join(repoRoot(), 'test', 'support', 'register-ts.js'), join(repoRoot(), script)], {
    cwd: repoRoot(),
    env: { ...process.env, DATABASE_URL: '', ...env },
    timeout: timeoutMs,
    maxBuffer: 10 * 1024 * 1024,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

/**
 * The body of a child-process script for {@link inChildProcess}: opens embedded PGlite in
 * memory, runs `scenario` on it and prints what it saw as one JSON line (exit 1 on failure).
 */
export function printOnPglite(scenario: (db: Db) => Promise<unknown>): void {
  (async () => {
    const db = await openDb({ pgliteDir: 'memory://' });
    if (db.kind !== 'pglite') throw new Error(`expected PGlite, got ${db.kind}`);
    try {
      process.stdout.write(`${JSON.stringify(await scenario(db))}\n`);
    } finally {
      await db.close();
    }
  })().catch((err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
