import {
  CreateMerchantRequest,
  CreateMerchantResponse,
  MerchantAdminServiceService,
  MerchantStatus,
  ReactivateMerchantRequest,
  ReactivateMerchantResponse,
  SuspendMerchantRequest,
  SuspendMerchantResponse,
  type Merchant,
  type MerchantAdminServiceServer,
} from '../../../gen/wristpay/gateway/v1/gateway';
import type { Db, Queryable } from '../../../platform/db';
import { AlreadyExists, InvalidArgument, NotFound, PermissionDenied } from '../../../platform/errors';
import { register, type CallerPolicy, type Handlers } from '../../../platform/grpc/server';
import { once } from '../../../platform/idempotency';
import type { Logger } from '../../../platform/log';
import { requireCurrency } from '../../../platform/money';
import { requireCountry, requireId, requireMerchantName, requireText } from '../../../platform/validate';

/** A merchant's terminals and back end call as `merchant.<merchant_id>` (the certificate CN). */
export const MERCHANT_IDENTITY_PREFIX = 'merchant.';
/** The pattern the caller policy allows for merchant-facing methods. */
export const MERCHANT_CALLERS = [`${MERCHANT_IDENTITY_PREFIX}*`] as const;
// A certificate CN is at most 64 characters (RFC 5280 ub-common-name), prefix included.
const MERCHANT_ID_MAX = 64 - MERCHANT_IDENTITY_PREFIX.length;

export const merchantIdentity = (merchantId: string): string => `${MERCHANT_IDENTITY_PREFIX}${merchantId}`;

export interface MerchantRow {
  merchant_id: string;
  display_name: string;
  mcc: string;
  country: string;
  settlement_currency: string;
  status: 'ACTIVE' | 'SUSPENDED';
  status_reason: string;
  created_at: Date;
  updated_at: Date;
}

export function toMerchant(row: MerchantRow): Merchant {
  return {
    merchantId: row.merchant_id,
    displayName: row.display_name,
    mcc: row.mcc,
    country: row.country,
    settlementCurrency: row.settlement_currency,
    status: MerchantStatus[`MERCHANT_STATUS_${row.status}`],
    statusReason: row.status_reason,
    callerIdentity: merchantIdentity(row.merchant_id),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** A merchant id as the registry takes it: an id (platform/validate) short enough for its certificate CN. */
export function requireMerchantId(value: string, field = 'merchant_id'): string {
  requireId(value, field);
  if (value.length > MERCHANT_ID_MAX) throw new InvalidArgument(`${field} must be at most ${MERCHANT_ID_MAX} characters (it is part of a certificate name)`);
  return value;
}

/** The merchant registry (merchants table). */
export class MerchantStore {
  constructor(private readonly db: Db) {}

  async get(merchantId: string, q: Queryable = this.db): Promise<MerchantRow | undefined> {
    const { rows } = await q.query<MerchantRow>('SELECT * FROM merchants WHERE merchant_id = $1', [merchantId]);
    return rows[0];
  }

  async create(q: Queryable, m: Pick<MerchantRow, 'merchant_id' | 'display_name' | 'mcc' | 'country' | 'settlement_currency'>): Promise<MerchantRow> {
    const { rows } = await q.query<MerchantRow>(
      `INSERT INTO merchants (merchant_id, display_name, mcc, country, settlement_currency) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (merchant_id) DO NOTHING RETURNING *`,
      [m.merchant_id, m.display_name, m.mcc, m.country, m.settlement_currency],
    );
    if (!rows[0]) throw new AlreadyExists(`merchant ${m.merchant_id} already exists`);
    return rows[0];
  }

  async setStatus(q: Queryable, merchantId: string, status: MerchantRow['status'], reason: string): Promise<MerchantRow> {
    const { rows } = await q.query<MerchantRow>('UPDATE merchants SET status = $2, status_reason = $3, updated_at = now() WHERE merchant_id = $1 RETURNING *', [merchantId, status, reason]);
    if (!rows[0]) throw new NotFound(`no merchant ${merchantId}`);
    return rows[0];
  }

  async list(limit: number, after?: string): Promise<MerchantRow[]> {
    const { rows } = await this.db.query<MerchantRow>(
      after === undefined ? 'SELECT * FROM merchants ORDER BY merchant_id LIMIT $1' : 'SELECT * FROM merchants WHERE merchant_id > $2 ORDER BY merchant_id LIMIT $1',
      after === undefined ? [limit] : [limit, after],
    );
    return rows;
  }
}

/**
 * The merchant a merchant-facing call acts for: the one bound to the caller's identity. A
 * `merchant_id` in the request, when set, must be that merchant; an unknown or suspended
 * merchant is refused. (The caller policy already refused every identity that is not a
 * merchant's.)
 */
export async function callingMerchant(merchants: MerchantStore, caller: string | null, requested: string): Promise<MerchantRow> {
  if (!caller?.startsWith(MERCHANT_IDENTITY_PREFIX)) throw new PermissionDenied('only a merchant identity (merchant.<id>) may call this');
  const merchantId = caller.slice(MERCHANT_IDENTITY_PREFIX.length);
  if (requested !== '' && requested !== merchantId) throw new PermissionDenied(`this caller acts for merchant ${merchantId}, not ${requested}`);
  const merchant = await merchants.get(merchantId);
  if (!merchant) throw new PermissionDenied(`merchant ${merchantId} is not registered`);
  if (merchant.status !== 'ACTIVE') throw new PermissionDenied(`merchant ${merchantId} is suspended`);
  return merchant;
}

const MCC = /^\d{4}$/;

/** Onboarding RPCs for the back office (the caller policy admits only its identity). */
export function merchantAdminService(deps: { db: Db; merchants: MerchantStore; log: Logger; allowedCallers: CallerPolicy<MerchantAdminServiceServer> }) {
  const { db, merchants, log } = deps;

  const handlers: Handlers<MerchantAdminServiceServer> = {
    async createMerchant(req, ctx) {
      const merchantId = requireMerchantId(req.merchantId);
      const displayName = requireMerchantName(req.displayName, 'display_name');
      if (displayName === '') throw new InvalidArgument('display_name is required');
      if (!MCC.test(req.mcc)) throw new InvalidArgument('mcc must be a four-digit merchant category code (ISO 18245)');
      const country = requireCountry(req.country);
      const currency = requireCurrency(req.settlementCurrency, 'settlement_currency');
      return once(db, 'CreateMerchant', req.idempotencyKey, { codec: CreateMerchantRequest, value: req }, CreateMerchantResponse, async (q) => {
        const merchant = toMerchant(await merchants.create(q, { merchant_id: merchantId, display_name: displayName, mcc: req.mcc, country, settlement_currency: currency }));
        // Inside the first call only: a replay of the answer onboards nothing.
        log.info({ merchantId, by: ctx.caller }, 'merchant onboarded');
        return { merchant };
      });
    },

    async getMerchant(req) {
      const merchantId = requireMerchantId(req.merchantId);
      const row = await merchants.get(merchantId);
      if (!row) throw new NotFound(`no merchant ${merchantId}`);
      return { merchant: toMerchant(row) };
    },

    async listMerchants(req) {
      const pageSize = req.pageSize === 0 ? 50 : req.pageSize;
      if (pageSize < 1 || pageSize > 200) throw new InvalidArgument('page_size must be between 1 and 200');
      let after: string | undefined;
      if (req.pageToken) {
        after = Buffer.from(req.pageToken, 'base64url').toString('utf8');
        if (Buffer.from(after, 'utf8').toString('base64url') !== req.pageToken) throw new InvalidArgument('page_token is not one this service issued');
        requireMerchantId(after, 'page_token');
      }
      const rows = await merchants.list(pageSize + 1, after);
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      return { merchants: page.map(toMerchant), nextPageToken: rows.length > pageSize && last ? Buffer.from(last.merchant_id, 'utf8').toString('base64url') : '' };
    },

    async suspendMerchant(req, ctx) {
      const merchantId = requireMerchantId(req.merchantId);
      const reason = requireText(req.reason, 'reason', 256);
      return once(db, 'SuspendMerchant', req.idempotencyKey, { codec: SuspendMerchantRequest, value: req }, SuspendMerchantResponse, async (q) => {
        const merchant = toMerchant(await merchants.setStatus(q, merchantId, 'SUSPENDED', reason));
        log.info({ merchantId, by: ctx.caller }, 'merchant suspended');
        return { merchant };
      });
    },

    async reactivateMerchant(req, ctx) {
      const merchantId = requireMerchantId(req.merchantId);
      return once(db, 'ReactivateMerchant', req.idempotencyKey, { codec: ReactivateMerchantRequest, value: req }, ReactivateMerchantResponse, async (q) => {
        const merchant = toMerchant(await merchants.setStatus(q, merchantId, 'ACTIVE', ''));
        log.info({ merchantId, by: ctx.caller }, 'merchant reactivated');
        return { merchant };
      });
    },
  };

  return register<MerchantAdminServiceServer>({ definition: MerchantAdminServiceService, handlers, allowedCallers: deps.allowedCallers });
}
