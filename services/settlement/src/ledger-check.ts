import { z } from 'zod';
import { ConfigError, databaseEnv, loadConfig } from '../../../platform/config';
import { openDb } from '../../../platform/db';
import { checkLedger } from './invariants';

/**
 * `node dist/services/settlement/src/ledger-check.js [--json]`: checks the settlement ledger's
 * invariants on DATABASE_URL (or PGLITE_DIR) and exits 0 when sound, 1 when not, 2 when it
 * could not check. Read-only.
 */
async function main(argv: string[]): Promise<number> {
  const config = loadConfig(z.object({ ...databaseEnv }));
  if (!config.DATABASE_URL && config.PGLITE_DIR === 'memory://') throw new ConfigError('invalid configuration: DATABASE_URL: set it (or PGLITE_DIR) to the ledger to check');
  const db = await openDb({ databaseUrl: config.DATABASE_URL, pgliteDir: config.PGLITE_DIR, poolSize: 1 });
  try {
    const result = await checkLedger(db);
    if (argv.includes('--json')) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      const { accounts, transfers, postings, holds } = result.counts;
      const scope = `${accounts} accounts, ${transfers} transfers, ${postings} postings, ${holds} holds`;
      process.stdout.write(result.ok ? `ledger check: OK (${scope})\n` : `ledger check: ${result.violations.length} violation(s) (${scope})\n${result.violations.map((v) => `  - ${v}`).join('\n')}\n`);
    }
    return result.ok ? 0 : 1;
  } finally {
    await db.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`ledger-check: ${err instanceof ConfigError ? err.message : `could not check: ${err.message.split('\n')[0]}`}\n`);
      process.exit(2);
    },
  );
}
