import { FundingSource } from '../../../gen/wristpay/tokenization/v1/tokenization';
import type { Db, Queryable } from '../../../platform/db';
import { FailedPrecondition, NotFound, Unavailable } from '../../../platform/errors';
import { newEvent } from '../../../platform/events';
import { enqueueEvent } from '../../../platform/outbox';
import { open, rewrap, seal, type Keyring } from './domain/envelope';
import { fundingLast4, newTokenNumber, type Funding } from './domain/funding';
import { tokenTransition, type TokenAction, type TokenState } from './domain/lifecycle';
import { precheck, type ChannelName } from './domain/verification';
import { writeVerification, type Decision, type IdempotencyRecord, type PaymentFacts, type WriteResult } from './verification-write';

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

/** The token fields a verification reads. */
export type VerifyingToken = Pick<TokenRow, 'token_id' | 'device_id' | 'account_id' | 'status' | 'channels'>;

const SOURCE = 'tokenization';
const TOKEN_NUMBER_ATTEMPTS = 8;

/**
 * PostgreSQL access for the vault. Every state change writes its event to the outbox in the
 * same transaction (a verification in the same statement, verification-write.ts); the funding
 * source goes in and comes out only through the envelope.
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
   * Checks a tap in two round trips: reads the token, checks status and channel, then the
   * cryptogram (via `cryptogramValid`, only once everything else passed), then sends one
   * statement that moves the ATC high-water mark with a conditional UPDATE (two racing taps
   * with one ATC cannot both win: the second sees `atc_high < $atc` false; a token suspended or
   * deleted since the read is not moved) and writes the rest (verification-write.ts).
   */
  async verifyTap(input: { tokenNumber: string } & PaymentFacts, idempotency: IdempotencyRecord | undefined, cryptogramValid: (token: VerifyingToken) => boolean): Promise<WriteResult> {
    return this.verify(input, idempotency, (token) => (cryptogramValid(token) ? { guard: 'atc', atc: input.atc } : { refused: 'CRYPTOGRAM_MISMATCH' }));
  }

  /**
   * Checks an offline code: status, channel, the code (via `matchStep`, ±1 step), then one
   * statement spends that (token, step) pair under a share lock on the token row (a pair
   * already spent is CODE_REUSED; a token suspended or deleted since the read is refused).
   */
  async verifyCode(input: { tokenNumber: string } & PaymentFacts, idempotency: IdempotencyRecord | undefined, matchStep: (token: VerifyingToken) => bigint | undefined): Promise<WriteResult> {
    return this.verify(input, idempotency, (token) => {
      const step = matchStep(token);
      return step === undefined ? { refused: 'CODE_INVALID' } : { guard: 'code', step };
    });
  }

  /** Whether this token's code for `step` was already accepted. */
  async codeSpent(tokenId: string, step: bigint): Promise<boolean> {
    const { rowCount } = await this.db.query('SELECT 1 FROM offline_codes_used WHERE token_id = $1 AND step = $2', [tokenId, step]);
    return rowCount > 0;
  }

  /**
   * One verification: the token read (the credential check needs it in this process, where the
   * token key lives), the checks in their fixed order (precheck, then `decide`), and the write
   * (verification-write.ts), which commits the guard, the failure counter, the event and the
   * payment id's answer together, or none of them.
   */
  private async verify(input: { tokenNumber: string } & PaymentFacts, idempotency: IdempotencyRecord | undefined, decide: (token: VerifyingToken) => Decision): Promise<WriteResult> {
    const { rows } = await this.db.query<VerifyingToken>('SELECT token_id, device_id, account_id, status, channels FROM tokens WHERE token_number = $1', [input.tokenNumber]);
    const token = rows[0];
    const refused = precheck(token, input.channel);
    const decision: Decision = refused ? { refused } : decide(token!);
    return writeVerification(this.db, token && { token_id: token.token_id, device_id: token.device_id, account_id: token.account_id }, input, decision, idempotency);
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
