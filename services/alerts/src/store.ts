import type { Db } from '../../../platform/db';
import type { RetentionRule } from '../../../platform/retention';
import type { AlertDraft, AlertKindName } from './domain/alert';

/**
 * Alerts older than `days` go (ALERTS_RETENTION_DAYS); the feed rows (alert_feeds) stay, so an
 * account's sequence carries on, and created_at rises with the sequence (001_alerts.sql), so a
 * feed is pruned from its oldest end.
 */
export function alertsRetention(days: number): RetentionRule {
  return { table: 'alerts', key: ['account_id', 'sequence'], timeColumn: 'created_at', retainDays: days };
}

/** One stored alert, as the database returns it. */
export interface AlertRow {
  account_id: string;
  sequence: bigint;
  event_id: string;
  kind: AlertKindName;
  device_id: string;
  payment_id: string;
  occurred_at: Date;
  wrist_merchant_name: string;
  wrist_amount_minor: bigint | null;
  wrist_currency: string | null;
  wrist_outcome: string;
  phone_title: string;
  phone_body: string;
  merchant_id: string;
  decline_reason: string;
  /** The step-up of a CHALLENGED alert: all three set, or none (003_step_up.sql). */
  step_up_challenge_id: string | null;
  /** bytea: a Buffer from pg, a Uint8Array from PGlite. */
  step_up_nonce: Uint8Array | null;
  step_up_expires_at: Date | null;
}

export type RecordOutcome = { stored: true; sequence: bigint } | { stored: false; reason: 'duplicate' };

/** The alerts database: per-account feeds with a gap-free sequence, one alert per event. */
export class AlertStore {
  constructor(private readonly db: Db) {}

  /**
   * Stores the alert made from one event, once per event id, and gives it the account's next
   * sequence, all in one transaction. The feed row's lock orders an account's alerts: the next
   * one gets its number only after this one has committed, so sequences commit in order and a
   * reader never sees n+1 before n. A redelivered event (its key in processed_events, or its
   * alert still stored after that key was pruned) stores nothing and takes no number.
   */
  async record(consumer: string, draft: AlertDraft): Promise<RecordOutcome> {
    // One statement, so one round trip and one commit per event (it was BEGIN, four statements
    // and COMMIT): the processed-event key, the feed's next sequence and the alert are CTEs that
    // each run only if the one before returned a row. A second delivery of the event at the same
    // time waits on the key's unique index for the first to commit, then conflicts; an event whose
    // alert is kept while its key was pruned (retention) bumps no sequence.
    const { rows } = await this.db.query<{ sequence: bigint }>(
      `WITH fresh AS (
         INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id
       ), feed AS (
         INSERT INTO alert_feeds (account_id, last_sequence)
         SELECT $3, 1 FROM fresh WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE event_id = $2)
         ON CONFLICT (account_id) DO UPDATE SET last_sequence = alert_feeds.last_sequence + 1, updated_at = now()
         RETURNING last_sequence
       )
       INSERT INTO alerts (account_id, sequence, event_id, kind, device_id, payment_id, occurred_at, wrist_merchant_name, wrist_amount_minor, wrist_currency,
                           wrist_outcome, phone_title, phone_body, merchant_id, decline_reason, step_up_challenge_id, step_up_nonce, step_up_expires_at)
       SELECT $3, last_sequence, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 FROM feed
       RETURNING sequence`,
      [
        consumer,
        draft.eventId,
        draft.accountId,
        draft.kind,
        draft.deviceId,
        draft.paymentId,
        draft.occurredAt,
        draft.wrist.merchantName,
        draft.wrist.amount?.amountMinor ?? null,
        draft.wrist.amount?.currency ?? null,
        draft.wrist.outcome,
        draft.phone.title,
        draft.phone.body,
        draft.phone.merchantId,
        draft.phone.declineReason,
        draft.stepUp?.challengeId ?? null,
        draft.stepUp?.nonce ?? null,
        draft.stepUp?.expiresAt ?? null,
      ],
    );
    return rows[0] ? { stored: true, sequence: BigInt(rows[0].sequence) } : { stored: false, reason: 'duplicate' };
  }

  /** Up to `limit` of the account's alerts after `afterSequence`, oldest first. */
  async after(accountId: string, afterSequence: bigint, limit: number): Promise<AlertRow[]> {
    const { rows } = await this.db.query<AlertRow>('SELECT * FROM alerts WHERE account_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3', [accountId, afterSequence, limit]);
    return rows;
  }
}

