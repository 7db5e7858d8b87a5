import { openDb } from '../../platform/db';
import { runRetentionScenario } from './retention-scenario';

// Child-process entry (see register-ts.js): runs the retention scenario on embedded PGlite and
// prints what it saw as one JSON line.
(async () => {
  const db = await openDb({ pgliteDir: 'memory://' });
  if (db.kind !== 'pglite') throw new Error(`expected PGlite, got ${db.kind}`);
  try {
    process.stdout.write(`${JSON.stringify(await runRetentionScenario(db))}\n`);
  } finally {
    await db.close();
  }
})().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
