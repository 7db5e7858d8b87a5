import { FundingSource } from '../../../gen/wristpay/tokenization/v1/tokenization';
import type { Db, Queryable } from '../../../platform/db';
import { FailedPrecondition, NotFound, Unavailable } from '../../../platform/errors';
import { newEvent } from '../../../platform/events';
import { enqueueEvent } from '../../../platform/outbox';
import { open, rewrap, seal, type Keyring } from './domain/envelope';
import { fundingLast4, newTokenNumber, type Funding } from './domain/funding';
import { tokenTransition, type TokenAction, type TokenState } from './domain/lifecycle';
import { channelValue, precheck, type ChannelName, type VerifyOutcome } from './domain/verification';

export interface TokenRow {
  token_id: string;
  token_number: string;
  device_id: string;
  account_id: string;
  channels: ChannelName[];
  status: TokenState;
  status_reason: string;
  funding_ciphertext: Uint8Array;
  funding_iv: Uint8Array;
  funding_tag: Uint8Array;
  data_key_wrapped: Uint8Array;
  kek_version: number;
  funding_last4: string;
  atc_high: bigint;
  created_at: Date;
  updated_at: Date;
}

/** What a verification reports about the payment it checked (never the credential itself). */
export interface PaymentFacts {
  amountMinor: bigint;
  currency: string;
  merchantId: string;
  atc: bigint;
  channel: ChannelName;
}

export interface VerificationRecord {
  outcome: VerifyOutcome;
  token: Pick<TokenRow, 'token_id' | 'device_id' | 'account_id'> | undefined;
  recentFailures: number;
}

const SOURCE = 'tokenization';
/** Failures older than this no longer count as "recent" and are pruned. */
const FAILURE_WINDOW = "interval '1 hour'";
const TOKEN_NUMBER_ATTEMPTS = 8;

/**
 * PostgreSQL access for the vault. Every state change writes its event to the outbox in the
 * same transaction; the funding source goes in and comes out only through the envelope.
 */
export class TokenStore {
  constructor(
    readonly db: Db,
    private readonly keyring: Keyring,
    private readonly issuing: { bin: string; length: number },
  ) {}

  /**
   * Serialises work on one band's tokens: provisioning and resuming (which check the band with
   * device-registry) against the device-event consumer (which suspends or deletes its tokens).
   * Whichever comes second sees the other's effect, so a token provisioned while its band is
   * being reported lost is either refused or suspended, never left ACTIVE.
   */
  async lockDevice(q: Queryable, deviceId: string): Promise<void> {
    await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tokenization.device:${deviceId}`]);
  }

  async provision(q: Queryable, input: { tokenId: string; deviceId: string; accountId: string; funding: Funding; channels: ChannelName[] }): Promise<TokenRow> {
    const { tokenId, deviceId, accountId, funding, channels } = input;
    const sealed = seal(this.keyring, Buffer.from(FundingSource.encode(toFundingSource(funding)).finish()), tokenId);
    for (let attempt = 0; attempt < TOKEN_NUMBER_ATTEMPTS; attempt++) {
      const tokenNumber = newTokenNumber(this.issuing.bin, this.issuing.length, funding);
      // ON CONFLICT DO NOTHING keeps the transaction usable when the number is already taken.
      const { rows } = await q.query<TokenRow>(
        `INSERT INTO tokens (token_id, token_number, device_id, account_id, channels, status, funding_ciphertext, funding_iv, funding_tag,
                             data_key_wrapped, kek_version, funding_last4)
         VALUES ($1, $2, $3, $4, $5, 'ACTIVE', $6, $7, $8, $9, $10, $11)
         ON CONFLICT (token_number) DO NOTHING RETURNING *`,
        [tokenId, tokenNumber, deviceId, accountId, channels, sealed.ciphertext, sealed.iv, sealed.tag, sealed.wrappedDataKey, sealed.kekVersion, fundingLast4(funding)],
      );
      if (rows[0]) {
        await enqueueEvent(q, tokenEvent('token.provisioned', rows[0]));
        return rows[0];
      }
    }
    // Only a nearly full BIN range gets here: an operator must widen TOKEN_BIN or TOKEN_LENGTH.
    throw new Unavailable('could not issue a free token number; the token BIN range is nearly exhausted');
  }

  async get(q: Queryable, tokenId: string, forUpdate = false): Promise<TokenRow> {
    const { rows } = await q.query<TokenRow>(`SELECT * FROM tokens WHERE token_id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [tokenId]);
    if (!rows[0]) throw new NotFound(`no token ${tokenId}`);
    return rows[0];
  }

  /** Applies a lifecycle action under a row lock and enqueues its event; returns the updated row. */
  async apply(q: Queryable, tokenId: string, action: TokenAction, reason = ''): Promise<TokenRow> {
    const current = await this.get(q, tokenId, true);
    const { to, event } = tokenTransition(current.status, action);
    const { rows } = await q.query<TokenRow>('UPDATE tokens SET status = $2, status_reason = $3, updated_at = now() WHERE token_id = $1 RETURNING *', [tokenId, to, reason]);
    await enqueueEvent(q, tokenEvent(event, rows[0]!));
    return rows[0]!;
  }

  /**
   * Applies a device event to every token of the band, once per event id: `suspend` moves its
   * ACTIVE tokens to SUSPENDED, `delete` moves all its live tokens to DELETED. Returns the
   * tokens changed, or undefined when this event was already applied.
   */
  async applyDeviceEvent(consumer: string, eventId: string, deviceId: string, effect: 'suspend' | 'delete', reason: string): Promise<TokenRow[] | undefined> {
    return this.db.tx(async (q) => {
      const fresh = await q.query('INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [consumer, eventId]);
      if (fresh.rowCount === 0) return undefined;
      await this.lockDevice(q, deviceId);
      const { rows } =
        effect === 'suspend'
          ? await q.query<TokenRow>(
              "UPDATE tokens SET status = 'SUSPENDED', status_reason = $2, updated_at = now() WHERE device_id = $1 AND status = 'ACTIVE' RETURNING *",
              [deviceId, reason],
            )
          : await q.query<TokenRow>(
              "UPDATE tokens SET status = 'DELETED', status_reason = $2, updated_at = now() WHERE device_id = $1 AND status <> 'DELETED' RETURNING *",
              [deviceId, reason],
            );
      const type = effect === 'suspend' ? 'token.suspended' : 'token.deleted';
      for (const row of rows) await enqueueEvent(q, tokenEvent(type, row));
      return rows;
    });
  }

  /** Decrypts a token's funding source (Detokenize). */
  async funding(q: Queryable, tokenId: string): Promise<FundingSource> {
    const row = await this.get(q, tokenId);
    const plain = open(
      this.keyring,
      {
        ciphertext: Buffer.from(row.funding_ciphertext),
        iv: Buffer.from(row.funding_iv),
        tag: Buffer.from(row.funding_tag),
        wrappedDataKey: Buffer.from(row.data_key_wrapped),
        kekVersion: row.kek_version,
      },
      row.token_id,
    );
    try {
      return FundingSource.decode(plain);
    } finally {
      plain.fill(0);
    }
  }

  /**
   * Checks a tap: status, channel, the cryptogram (via `cryptogramValid`, only once everything
   * else passed), then moves the ATC high-water mark with one conditional UPDATE. Two racing
   * taps with the same ATC cannot both win: the second sees `atc_high < $atc` false.
   * Runs on `q`, which must be an open transaction (see `verify`).
   */
  async verifyTap(q: Queryable, input: { tokenNumber: string } & PaymentFacts, cryptogramValid: (token: TokenRow) => boolean): Promise<VerificationRecord> {
    return this.verify(q, input, false, async (token) => {
      if (!cryptogramValid(token)) return 'CRYPTOGRAM_MISMATCH';
      const moved = await q.query("UPDATE tokens SET atc_high = $2 WHERE token_id = $1 AND atc_high < $2 AND status = 'ACTIVE'", [token.token_id, input.atc]);
      if (moved.rowCount === 1) return 'OK';
      // Not moved: either the ATC is not above the mark, or the token stopped being ACTIVE since we read it.
      const now = await this.get(q, token.token_id);
      return now.status === 'SUSPENDED' ? 'TOKEN_SUSPENDED' : now.status === 'DELETED' ? 'TOKEN_DELETED' : 'REPLAY';
    });
  }

  /**
   * Checks an offline code: status, channel, the code (via `matchStep`, ±1 step), then spends
   * that (token, step) pair; a pair already spent is CODE_REUSED. Runs on `q`, an open
   * transaction (see `verify`).
   */
  async verifyCode(q: Queryable, input: { tokenNumber: string } & PaymentFacts, matchStep: (token: TokenRow) => bigint | undefined): Promise<VerificationRecord> {
    return this.verify(q, input, true, async (token) => {
      const step = matchStep(token);
      if (step === undefined) return 'CODE_INVALID';
      const spent = await q.query('INSERT INTO offline_codes_used (token_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING', [token.token_id, step]);
      if (spent.rowCount === 0) return 'CODE_REUSED';
      // Steps more than a few behind can never match again; keep the table small.
      await q.query('DELETE FROM offline_codes_used WHERE token_id = $1 AND step < $2', [token.token_id, step - 4n]);
      return 'OK';
    });
  }

  /** Whether this token's code for `step` was already accepted. */
  async codeSpent(tokenId: string, step: bigint): Promise<boolean> {
    const { rowCount } = await this.db.query('SELECT 1 FROM offline_codes_used WHERE token_id = $1 AND step = $2', [tokenId, step]);
    return rowCount > 0;
  }

  /**
   * One verification on the caller's transaction `q`: the checks, the replay guard, the failure
   * counter and the event commit together, and with whatever else the caller writes in it (the
   * idempotency row of a payment id), so a crash keeps all of them or none. `q` must be a
   * transaction (`db.tx`), never the pool: `lockShared` and the replay guard rely on it.
   * `lockShared` holds the token row against a concurrent status change for paths whose guard
   * is not a conditional UPDATE of that row.
   */
  private async verify(
    q: Queryable,
    input: { tokenNumber: string } & PaymentFacts,
    lockShared: boolean,
    accept: (token: TokenRow) => Promise<VerifyOutcome>,
  ): Promise<VerificationRecord> {
    const { rows } = await q.query<TokenRow>(`SELECT * FROM tokens WHERE token_number = $1${lockShared ? ' FOR SHARE' : ''}`, [input.tokenNumber]);
    const token = rows[0];
    const outcome = precheck(token, input.channel) ?? (await accept(token!));
    let recentFailures = 0;
    if (token) {
      if (outcome !== 'OK') {
        await q.query('INSERT INTO verification_failures (token_id, result) VALUES ($1, $2)', [token.token_id, outcome]);
        await q.query(`DELETE FROM verification_failures WHERE token_id = $1 AND failed_at < now() - ${FAILURE_WINDOW}`, [token.token_id]);
      }
      const counted = await q.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM verification_failures WHERE token_id = $1 AND failed_at >= now() - ${FAILURE_WINDOW}`,
        [token.token_id],
      );
      recentFailures = counted.rows[0]!.n;
    }
    await enqueueEvent(
      q,
      newEvent(outcome === 'OK' ? 'token.payment.verified' : 'token.payment.refused', SOURCE, {
        $case: 'verification',
        value: {
          tokenId: token?.token_id ?? '',
          deviceId: token?.device_id ?? '',
          result: outcome,
          amount: { amountMinor: input.amountMinor, currency: input.currency },
          merchantId: input.merchantId,
          atc: input.atc,
          channel: channelValue(input.channel),
        },
      }),
    );
    return { outcome, token: token && { token_id: token.token_id, device_id: token.device_id, account_id: token.account_id }, recentFailures };
  }

  /** Record counts per KEK version, to check that every version in use is held before rotating. */
  async kekVersionsInUse(): Promise<Map<number, number>> {
    const { rows } = await this.db.query<{ kek_version: number; n: number }>('SELECT kek_version, count(*)::int AS n FROM tokens GROUP BY kek_version');
    return new Map(rows.map((r) => [r.kek_version, r.n]));
  }

  /**
   * Re-wraps up to `limit` data keys not yet under the active KEK, after `cursor` in token id
   * order, in one short transaction. Each UPDATE is conditional on the version it read, so
   * replicas rotating at once never double-wrap, and a payment racing on the same row only
   * waits for this batch's commit. `cursor` is the last token id looked at (resume from it).
   */
  async rewrapBatch(cursor: string | undefined, limit: number): Promise<{ scanned: number; rewrapped: number; cursor: string | undefined }> {
    const active = this.keyring.activeVersion;
    return this.db.tx(async (q) => {
      const { rows } = await q.query<Pick<TokenRow, 'token_id' | 'data_key_wrapped' | 'kek_version'>>(
        `SELECT token_id, data_key_wrapped, kek_version FROM tokens
         WHERE kek_version <> $1 AND ($2::uuid IS NULL OR token_id > $2::uuid) ORDER BY token_id LIMIT $3`,
        [active, cursor ?? null, limit],
      );
      let rewrapped = 0;
      for (const row of rows) {
        const moved = rewrap(this.keyring, { wrappedDataKey: Buffer.from(row.data_key_wrapped), kekVersion: row.kek_version }, row.token_id);
        const updated = await q.query('UPDATE tokens SET data_key_wrapped = $2, kek_version = $3 WHERE token_id = $1 AND kek_version = $4', [
          row.token_id,
          moved.wrappedDataKey,
          moved.kekVersion,
          row.kek_version,
        ]);
        rewrapped += updated.rowCount;
      }
      return { scanned: rows.length, rewrapped, cursor: rows[rows.length - 1]?.token_id ?? cursor };
    });
  }
}

/** The KEK versions records use that this process cannot open; rotating must not start then. */
export function missingKekVersions(inUse: Map<number, number>, keyring: Keyring): string[] {
  return [...inUse].filter(([v]) => !keyring.has(v)).map(([v, n]) => `${n} records under KEK version ${v}`);
}

export function assertKeksHeld(inUse: Map<number, number>, keyring: Keyring): void {
  const missing = missingKekVersions(inUse, keyring);
  if (missing.length) throw new FailedPrecondition(`cannot rotate: ${missing.join(', ')}, which VAULT_KEKS does not hold`);
}

function toFundingSource(funding: Funding): FundingSource {
  return funding.kind === 'card'
    ? { source: { $case: 'cardNumber', value: funding.cardNumber } }
    : { source: { $case: 'walletAccountId', value: funding.walletAccountId } };
}

function tokenEvent(type: string, token: TokenRow) {
  return newEvent(type, SOURCE, {
    $case: 'token',
    value: {
      tokenId: token.token_id,
      deviceId: token.device_id,
      accountId: token.account_id,
      status: token.status,
      reason: token.status_reason,
      tokenLast4: token.token_number.slice(-4),
    },
  });
}
