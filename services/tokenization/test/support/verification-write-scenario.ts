import { randomBytes, randomUUID } from 'node:crypto';
import { Channel } from '../../../../gen/wristpay/common/v1/common';
import { Verification, VerifyPaymentRequest, VerifyResult } from '../../../../gen/wristpay/tokenization/v1/tokenization';
import { migrate, type Db } from '../../../../platform/db';
import { IdempotencyKeyReused } from '../../../../platform/errors';
import { decodeEvent } from '../../../../platform/events';
import { once } from '../../../../platform/idempotency';
import { repoPath } from '../../../../platform/paths';
import { Keyring } from '../../src/domain/envelope';
import { TokenStore } from '../../src/store';
import { idempotencyRecord, writeVerification, type PaymentFacts } from '../../src/verification-write';

/**
 * The verification write (src/verification-write.ts and its migration) on one database, through
 * the store as the server calls it and directly: statements sent, the answers, the stored bytes,
 * the events, idempotency as `once` keeps it, and the races. Returns what it saw; the test
 * compares it with what must hold, on PostgreSQL and on PGlite.
 */
export async function runVerificationWriteScenario(db: Db): Promise<Record<string, unknown>> {
  await migrate(db, repoPath('services', 'tokenization', 'migrations'));
  const sent: Array<{ sql: string; params: unknown[] }> = [];
  const counting: Db = {
    ...db,
    query: (sql, params) => {
      sent.push({ sql, params: params ?? [] });
      return db.query(sql, params);
    },
    tx: (fn) =>
      db.tx((q) => {
        sent.push({ sql: 'BEGIN', params: [] });
        return fn({ query: (sql, params) => (sent.push({ sql, params: params ?? [] }), q.query(sql, params)) });
      }),
  };
  const keyring = new Keyring(new Map([[1, randomBytes(32)]]), 1);
  const store = new TokenStore(counting, keyring, { bin: '489537', length: 16 });
  const seen: Record<string, unknown> = {};

  const token = async (status = 'ACTIVE', channels = ['BAND_TAP', 'BAND_QR']) => {
    const row = { token_id: randomUUID(), device_id: randomUUID(), account_id: `acct-${randomUUID()}`, token_number: `4895${String(Math.floor(Math.random() * 1e12)).padStart(12, '0')}` };
    await db.query(
      `INSERT INTO tokens (token_id, token_number, device_id, account_id, channels, status, funding_ciphertext, funding_iv, funding_tag, data_key_wrapped, kek_version, funding_last4)
       VALUES ($1, $2, $3, $4, $5, $6, '\\x00', '\\x00', '\\x00', '\\x00', 1, '0000')`,
      [row.token_id, row.token_number, row.device_id, row.account_id, channels, status],
    );
    return row;
  };
  type T = Awaited<ReturnType<typeof token>>;
  const facts = (atc: bigint, channel: 'BAND_TAP' | 'BAND_QR' = 'BAND_TAP'): PaymentFacts => ({ amountMinor: 1250n, currency: 'EUR', merchantId: 'm-1', atc, channel });
  /** A VerifyPaymentRequest for `t` (its cryptogram is random: the write never sees it). */
  const request = (t: T, atc: bigint, paymentId = randomUUID()): VerifyPaymentRequest => ({
    tokenNumber: t.token_number,
    atc,
    amount: { amountMinor: 1250n, currency: 'EUR' },
    merchantId: 'm-1',
    terminalNonce: Buffer.from('0102', 'hex'),
    cryptogram: randomBytes(16),
    channel: Channel.CHANNEL_BAND_TAP,
    paymentId,
  });
  const record = (req: VerifyPaymentRequest) => idempotencyRecord('VerifyPayment', req.paymentId, { codec: VerifyPaymentRequest, value: req });
  const tap = (t: T, req: VerifyPaymentRequest, valid = true) => store.verifyTap({ tokenNumber: t.token_number, ...facts(req.atc) }, record(req), () => valid);
  const name = (v: Verification) => (VerifyResult[v.result] ?? '').replace('VERIFY_RESULT_', '');
  const atcHigh = async (t: T) => String((await db.query<{ atc_high: bigint }>('SELECT atc_high FROM tokens WHERE token_id = $1', [t.token_id])).rows[0]!.atc_high);
  const storedBytes = async (key: string) => Buffer.from((await db.query<{ response: Uint8Array }>('SELECT response FROM idempotency_keys WHERE key = $1', [key])).rows[0]!.response).toString('hex');
  /** The outbox events about `t`: type and result, in order. */
  const events = async (t: T) =>
    (await db.query<{ event: Uint8Array }>('SELECT event FROM outbox ORDER BY seq')).rows
      .map((r) => decodeEvent(r.event))
      .filter((e) => e.payload?.$case === 'verification' && e.payload.value.tokenId === t.token_id)
      .map((e) => {
        const v = e.payload!.$case === 'verification' ? e.payload!.value : undefined;
        return `${e.type} ${v?.result} atc=${v?.atc} ${v?.amount?.amountMinor} ${v?.amount?.currency} ${v?.merchantId} device=${v?.deviceId === t.device_id}`;
      });
  const rejects = async (p: Promise<unknown>) => p.then(() => 'resolved', (err: Error) => (err instanceof IdempotencyKeyReused ? 'IdempotencyKeyReused' : err.message));

  // The OK path: the token read and one statement, nothing else; no credential among the values.
  const a = await token();
  const first = request(a, 1n);
  sent.length = 0;
  const ok = await tap(a, first);
  seen.okStatements = sent.map((s) => s.sql.split(/\s+/).slice(0, 4).join(' '));
  const values = sent.flatMap((s) => s.params.flat()).filter((p): p is string | Buffer => Buffer.isBuffer(p) || typeof p === 'string');
  const cryptogram = Buffer.from(first.cryptogram);
  seen.okValuesHoldCryptogram = values.some((p) => Buffer.from(p).includes(cryptogram) || String(p).includes(cryptogram.toString('hex')));
  seen.ok = { result: name(ok.verification), recentFailures: ok.verification.recentFailures, repeated: ok.repeated, matchesToken: ok.verification.tokenId === a.token_id && ok.verification.deviceId === a.device_id && ok.verification.accountId === a.account_id };
  seen.okStoredIsEncoded = (await storedBytes(first.paymentId)) === Buffer.from(Verification.encode(ok.verification).finish()).toString('hex');

  // A retry: the first answer, nothing written; the same id with another request: refused, nothing written.
  sent.length = 0;
  const retry = await tap(a, first, false);
  seen.retry = { result: name(retry.verification), repeated: retry.repeated, statements: sent.length };
  seen.reused = await rejects(tap(a, { ...first, merchantId: 'm-2' }));
  seen.afterRetries = { atc: await atcHigh(a), events: await events(a) };

  // The same ATC as another payment is a replay, counted; a wrong cryptogram is refused without touching the ATC.
  const replay = await tap(a, request(a, 1n));
  const forged = await tap(a, request(a, 2n), false);
  const next = await tap(a, request(a, 2n));
  seen.refusals = [replay, forged, next].map((r) => `${name(r.verification)} ${r.verification.recentFailures}`);
  seen.afterRefusals = { atc: await atcHigh(a), events: await events(a) };

  // Two racing payments with one ATC: one wins. Two racing retries of one payment: one runs, one repeats it.
  const b = await token();
  const race = await Promise.all([tap(b, request(b, 5n)), tap(b, request(b, 5n))]);
  seen.race = race.map((r) => name(r.verification)).sort();
  const same = request(b, 6n);
  const retries = await Promise.all([tap(b, same), tap(b, same)]);
  seen.concurrentRetry = { results: retries.map((r) => name(r.verification)), repeated: retries.map((r) => r.repeated).sort(), equal: Verification.encode(retries[0]!.verification).finish().toString() === Verification.encode(retries[1]!.verification).finish().toString() };
  seen.afterRaces = { atc: await atcHigh(b), events: (await events(b)).length };

  // recent_failures past one varint byte: the stored answer is still exactly what the encoder writes.
  const c = await token();
  await db.query("INSERT INTO verification_failures (token_id, result) SELECT $1, 'REPLAY' FROM generate_series(1, 299)", [c.token_id]);
  const many = request(c, 1n);
  const manyFailures = await tap(c, many, false);
  seen.manyFailures = { result: name(manyFailures.verification), recentFailures: manyFailures.verification.recentFailures, storedIsEncoded: (await storedBytes(many.paymentId)) === Buffer.from(Verification.encode(manyFailures.verification).finish()).toString('hex') };
  // Failures older than the window are pruned by the next refusal and not counted.
  await db.query("UPDATE verification_failures SET failed_at = now() - interval '2 hours' WHERE token_id = $1", [c.token_id]);
  const pruned = await tap(c, request(c, 1n), false);
  seen.pruned = { recentFailures: pruned.verification.recentFailures, rows: (await db.query('SELECT 1 FROM verification_failures WHERE token_id = $1', [c.token_id])).rowCount };

  // A token suspended or deleted after the service read it: the guard does not move, the status is the answer.
  const d = await token('SUSPENDED');
  const e = await token('DELETED');
  const late = async (t: T, decision: Parameters<typeof writeVerification>[3]) => {
    const r = await writeVerification(db, t, facts(1n, decision && 'guard' in decision && decision.guard === 'code' ? 'BAND_QR' : 'BAND_TAP'), decision, undefined);
    return `${name(r.verification)} ${r.verification.recentFailures}`;
  };
  seen.late = [await late(d, { guard: 'atc', atc: 1n }), await late(e, { guard: 'atc', atc: 1n }), await late(d, { guard: 'code', step: 7n }), await late(e, { guard: 'code', step: 7n })];
  seen.lateMoved = { atc: [await atcHigh(d), await atcHigh(e)], codes: (await db.query('SELECT 1 FROM offline_codes_used WHERE token_id = ANY($1::uuid[])', [[d.token_id, e.token_id]])).rowCount };

  // Offline codes: each (token, step) once, steps far behind pruned, no payment id means no idempotency row.
  const q = await token('ACTIVE', ['BAND_QR']);
  const code = (step: bigint) => store.verifyCode({ tokenNumber: q.token_number, ...facts(0n, 'BAND_QR') }, undefined, () => step);
  const codes = [await code(10n), await code(10n), await code(20n)];
  const invalid = await store.verifyCode({ tokenNumber: q.token_number, ...facts(0n, 'BAND_QR') }, undefined, () => undefined);
  seen.codes = [...codes, invalid].map((r) => `${name(r.verification)} ${r.verification.recentFailures}`);
  seen.codeSteps = (await db.query<{ step: bigint }>('SELECT step FROM offline_codes_used WHERE token_id = $1 ORDER BY step', [q.token_id])).rows.map((r) => String(r.step));
  // Wrong channel and unknown token, decided before any guard.
  const wrong = await store.verifyTap({ tokenNumber: q.token_number, ...facts(1n) }, undefined, () => true);
  const unknown = await store.verifyTap({ tokenNumber: '4895370000000000', ...facts(1n) }, undefined, () => true);
  seen.prechecked = [wrong, unknown].map((r) => `${name(r.verification)} ${r.verification.recentFailures} ${r.verification.tokenId === '' ? 'no token' : 'token'}`);

  // `once` and this write keep one record: each answers the other's retry, and refuses the other's key for another request.
  const f = await token();
  const byOnce = request(f, 1n);
  const onceAnswer: Verification = { result: VerifyResult.VERIFY_RESULT_OK, tokenId: f.token_id, deviceId: f.device_id, accountId: f.account_id, recentFailures: 3 };
  await once(db, 'VerifyPayment', byOnce.paymentId, { codec: VerifyPaymentRequest, value: byOnce }, Verification, async () => onceAnswer);
  const answeredFromOnce = await tap(f, byOnce);
  const byWrite = request(f, 2n);
  const written = await tap(f, byWrite);
  let ran = false;
  const fromOnce = await once(db, 'VerifyPayment', byWrite.paymentId, { codec: VerifyPaymentRequest, value: byWrite }, Verification, async () => ((ran = true), onceAnswer));
  seen.withOnce = {
    writeRepeatsOnce: answeredFromOnce.repeated && answeredFromOnce.verification.recentFailures === 3,
    onceRepeatsWrite: !ran && fromOnce.recentFailures === written.verification.recentFailures && fromOnce.result === written.verification.result,
    writeRefusesOnceKey: await rejects(tap(f, { ...byOnce, atc: 9n })),
    onceRefusesWriteKey: await rejects(once(db, 'VerifyPayment', byWrite.paymentId, { codec: VerifyPaymentRequest, value: { ...byWrite, atc: 9n } }, Verification, async () => onceAnswer)),
    atc: await atcHigh(f),
  };
  return seen;
}

/** What the scenario must see on either database. */
export function expectedVerificationWrite(): Record<string, unknown> {
  const okEvent = (atc: number) => `token.payment.verified OK atc=${atc} 1250 EUR m-1 device=true`;
  return {
    okStatements: ['SELECT token_id, device_id, account_id,', 'SELECT * FROM record_verification($1,'],
    okValuesHoldCryptogram: false,
    ok: { result: 'OK', recentFailures: 0, repeated: false, matchesToken: true },
    okStoredIsEncoded: true,
    retry: { result: 'OK', repeated: true, statements: 2 },
    reused: 'IdempotencyKeyReused',
    afterRetries: { atc: '1', events: [okEvent(1)] },
    refusals: ['REPLAY 1', 'CRYPTOGRAM_MISMATCH 2', 'OK 2'],
    afterRefusals: { atc: '2', events: [okEvent(1), 'token.payment.refused REPLAY atc=1 1250 EUR m-1 device=true', 'token.payment.refused CRYPTOGRAM_MISMATCH atc=2 1250 EUR m-1 device=true', okEvent(2)] },
    race: ['OK', 'REPLAY'],
    concurrentRetry: { results: ['OK', 'OK'], repeated: [false, true], equal: true },
    afterRaces: { atc: '6', events: 3 },
    manyFailures: { result: 'CRYPTOGRAM_MISMATCH', recentFailures: 300, storedIsEncoded: true },
    pruned: { recentFailures: 1, rows: 1 },
    late: ['TOKEN_SUSPENDED 1', 'TOKEN_DELETED 1', 'TOKEN_SUSPENDED 2', 'TOKEN_DELETED 2'],
    lateMoved: { atc: ['0', '0'], codes: 0 },
    codes: ['OK 0', 'CODE_REUSED 1', 'OK 1', 'CODE_INVALID 2'],
    codeSteps: ['20'],
    prechecked: ['WRONG_CHANNEL 3 token', 'UNKNOWN_TOKEN 0 no token'],
    withOnce: { writeRepeatsOnce: true, onceRepeatsWrite: true, writeRefusesOnceKey: 'IdempotencyKeyReused', onceRefusesWriteKey: 'IdempotencyKeyReused', atc: '2' },
  };
}
