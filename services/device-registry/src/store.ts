import { randomUUID } from 'node:crypto';
import type { Db, Queryable } from '../../../platform/db';
import { AlreadyExists, FailedPrecondition, NotFound } from '../../../platform/errors';
import { newEvent } from '../../../platform/events';
import { enqueueEvent } from '../../../platform/outbox';
import { transition, type DeviceState, type LifecycleAction } from './domain/lifecycle';

export interface DeviceRow {
  device_id: string;
  account_id: string;
  model: string;
  serial: string;
  status: DeviceState;
  ed25519_public_key: Uint8Array;
  x25519_public_key: Uint8Array;
  created_at: Date;
  paired_at: Date | null;
  updated_at: Date;
  tokens_provisioned: number;
  last_token_provisioned_at: Date | null;
}

/** What applying one token.provisioned did: counted it, had already counted it, or found no such band. */
export type TokenProvisionedOutcome = 'counted' | 'duplicate' | 'unknown-device';

const SOURCE = 'device-registry';

/** PostgreSQL access for devices; every state change writes its event to the outbox in the same transaction. */
export class DeviceStore {
  constructor(readonly db: Db) {}

  async register(
    q: Queryable,
    input: { accountId: string; model: string; serial: string; ed25519: Buffer; x25519: Buffer },
    maxPerAccount: number,
  ): Promise<DeviceRow> {
    // Serialise registrations per account so two racing calls cannot both pass the limit.
    await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`devices:${input.accountId}`]);
    const { rows: counted } = await q.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM devices WHERE account_id = $1 AND status NOT IN ('LOST', 'DEREGISTERED')",
      [input.accountId],
    );
    if (counted[0]!.n >= maxPerAccount) {
      throw new FailedPrecondition(`account already has ${counted[0]!.n} bands, the limit is ${maxPerAccount}`);
    }
    const inserted = await q.query<DeviceRow>(
      `INSERT INTO devices (device_id, account_id, model, serial, status, ed25519_public_key, x25519_public_key)
       VALUES ($1, $2, $3, $4, 'PENDING_PAIRING', $5, $6) ON CONFLICT (serial) DO NOTHING RETURNING *`,
      [randomUUID(), input.accountId, input.model, input.serial, input.ed25519, input.x25519],
    );
    const device = inserted.rows[0];
    if (!device) throw new AlreadyExists(`a band with serial ${input.serial} is already registered`);
    await enqueueEvent(q, deviceEvent('device.registered', device, ''));
    return device;
  }

  async get(q: Queryable, deviceId: string, forUpdate = false): Promise<DeviceRow> {
    const { rows } = await q.query<DeviceRow>(`SELECT * FROM devices WHERE device_id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [deviceId]);
    if (!rows[0]) throw new NotFound(`no device ${deviceId}`);
    return rows[0];
  }

  /** Applies a lifecycle action under a row lock and enqueues its event; returns the updated row. */
  async apply(q: Queryable, deviceId: string, action: LifecycleAction, reason = ''): Promise<DeviceRow> {
    const current = await this.get(q, deviceId, true);
    const { to, event } = transition(current.status, action);
    const { rows } = await q.query<DeviceRow>(
      `UPDATE devices SET status = $2, updated_at = now(), paired_at = CASE WHEN $2 = 'ACTIVE' AND paired_at IS NULL THEN now() ELSE paired_at END
       WHERE device_id = $1 RETURNING *`,
      [deviceId, to],
    );
    await enqueueEvent(q, deviceEvent(event, rows[0]!, reason, current.status));
    return rows[0]!;
  }

  /**
   * Counts one token provisioned to a band, once per (consumer, event id) in one transaction: a
   * redelivered event changes nothing. The last-provisioned time only moves forward, so events
   * arriving out of order leave the latest one. The processed mark stays for an unknown band too,
   * so its event is not retried (registry ids are never reissued: it cannot become known later).
   */
  async recordTokenProvisioned(consumer: string, eventId: string, deviceId: string, occurredAt: Date | undefined): Promise<TokenProvisionedOutcome> {
    return this.db.tx(async (q) => {
      const fresh = await q.query('INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [consumer, eventId]);
      if (fresh.rowCount === 0) return 'duplicate';
      // GREATEST ignores NULL: the first event sets the time, an event without one keeps it.
      const updated = await q.query(
        `UPDATE devices SET tokens_provisioned = tokens_provisioned + 1,
                last_token_provisioned_at = GREATEST(last_token_provisioned_at, $2::timestamptz)
          WHERE device_id = $1`,
        [deviceId, occurredAt ?? null],
      );
      return updated.rowCount === 0 ? 'unknown-device' : 'counted';
    });
  }

  /** One page of an account's devices, oldest first, by keyset: (created_at, device_id) after `afterDeviceId`. */
  async list(accountId: string, pageSize: number, afterDeviceId?: string): Promise<DeviceRow[]> {
    const { rows } = afterDeviceId
      ? await this.db.query<DeviceRow>(
          `SELECT * FROM devices WHERE account_id = $1
             AND (created_at, device_id) > (SELECT created_at, device_id FROM devices WHERE device_id = $2)
           ORDER BY created_at, device_id LIMIT $3`,
          [accountId, afterDeviceId, pageSize],
        )
      : await this.db.query<DeviceRow>('SELECT * FROM devices WHERE account_id = $1 ORDER BY created_at, device_id LIMIT $2', [accountId, pageSize]);
    return rows;
  }
}

function deviceEvent(type: string, device: DeviceRow, reason: string, previous = '') {
  return newEvent(type, SOURCE, {
    $case: 'device',
    value: { deviceId: device.device_id, accountId: device.account_id, status: device.status, previousStatus: previous, reason },
  });
}
