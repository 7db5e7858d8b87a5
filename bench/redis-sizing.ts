// Measures what one band and its account cost in Redis, key by key (MEMORY USAGE), as the real
// code writes them: a live session (device-registry's SessionStore: start + heartbeat), a pairing
// challenge, and N scored payments (risk's FeatureStore.record, deriveFeatures, decide, and
// DecisionStore.save: the Score path without gRPC). The sizing in k8s/README.md comes from it.
//   npm run build && node dist/bench/redis-sizing.js [--payments 20]   (REDIS_URL, default the local one)
// Works under a throwaway key prefix and deletes its keys at the end.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Redis from 'ioredis';
import { repoPath } from '../platform/paths';
import { SessionStore } from '../services/device-registry/src/sessions';
import { DecisionStore } from '../services/risk/src/decision-store';
import { decide } from '../services/risk/src/domain/decision';
import { deriveFeatures, type ScoreInput } from '../services/risk/src/domain/features';
import { parseModel, parseRuleSet } from '../services/risk/src/domain/rule-file';
import { FeatureStore } from '../services/risk/src/feature-store';

async function main(): Promise<void> {
  const payments = Number(process.argv[process.argv.indexOf('--payments') + 1] ?? 20) || 20;
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const prefix = `sizing${randomBytes(4).toString('hex')}`;
  try {
    const deviceId = `dev-${randomUUID()}`;
    const accountId = `acct-${randomUUID()}`;
    const sessions = new SessionStore(redis, prefix, { challengeMs: 120_000, sessionMs: 300_000, maxAgeMs: 12 * 3_600_000 });
    await sessions.createChallenge(deviceId, 'SESSION');
    const { session } = await sessions.start(deviceId, 1);
    await sessions.heartbeat(deviceId, session.sessionId);

    // The risk service's defaults (services/risk/src/config.ts).
    const features = new FeatureStore(redis, prefix, { dedupeMs: 48 * 3_600_000, maxEvents: 2_000, merchantMemoryMs: 180 * 86_400_000, profileMs: 365 * 86_400_000 });
    const decisions = new DecisionStore(redis, prefix, 30);
    const rules = parseRuleSet(readFileSync(repoPath('services/risk/rules/default.yaml'), 'utf8'), 'default.yaml');
    const model = parseModel(readFileSync(repoPath('services/risk/rules/model.yaml'), 'utf8'), 'model.yaml');
    const tokenId = `tok-${randomUUID()}`;
    for (let i = 0; i < payments; i++) {
      const input: ScoreInput = {
        paymentId: randomUUID(), accountId, deviceId, tokenId, merchantId: `m-shop-${i % 5}`, amountMinor: 250 + 137 * i, currency: 'EUR',
        location: { lat: 52.52 + i * 0.001, lon: 13.405 }, channelQr: i % 4 === 0, sessionLive: true, sessionAgeSeconds: 60 * i, deviceAgeSeconds: 86_400 * 30, cryptogramFailures: 0,
      };
      const now = Date.now() + i * 1_000;
      const { history } = await features.record(input, now);
      const f = deriveFeatures(input, history);
      await decisions.save(input.paymentId, { verdict: decide(f, rules, model, { challengeAt: 400, declineAt: 800, maxReasons: 5 }), features: f, scoredAt: new Date(now) });
    }

    const rows = new Map<string, { keys: number; bytes: number; ttl: boolean }>();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const bytes = Number(await redis.memory('USAGE', key, 'SAMPLES', '0'));
        const ttl = (await redis.pttl(key)) > 0;
        // The kind of key: ids replaced by placeholders.
        const kind = key.slice(prefix.length + 1).replace(/\{[^}]+\}/, '{id}').replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '<uuid>').replace(/m-shop-\d/, '<merchant>').replace(/\d{4}-\d{2}-\d{2}/, '<day>');
        const row = rows.get(kind) ?? { keys: 0, bytes: 0, ttl };
        row.keys++;
        row.bytes += bytes;
        rows.set(kind, row);
      }
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');

    const table = [...rows.entries()].sort().map(([kind, r]) => ({ kind, keys: r.keys, bytes: r.bytes, perKey: Math.round(r.bytes / r.keys), ttl: r.ttl }));
    const sum = (match: (k: string) => boolean) => table.filter((r) => match(r.kind)).reduce((s, r) => s + r.bytes, 0);
    process.stdout.write(`${JSON.stringify({ payments, redis: (await redis.info('server')).match(/redis_version:(\S+)/)?.[1], keys: table }, null, 1)}\n`);
    process.stdout.write(
      `${JSON.stringify({
        sessionBytes: sum((k) => k.startsWith('session:')),
        challengeBytes: sum((k) => k.startsWith('challenge:')),
        riskBytesForBandAndAccount: sum((k) => k.startsWith('risk-device:') || k.startsWith('risk-account:')),
        decisionBytesPerPayment: Math.round(sum((k) => k.startsWith('risk-decision:')) / payments),
      })}\n`,
    );
  } finally {
    redis.disconnect();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
