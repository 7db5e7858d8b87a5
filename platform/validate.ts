import { InvalidArgument } from './errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The ids services send each other for buyers, merchants, bands and payments: 1-128 letters,
 * digits or . _ @ + -, starting with a letter or digit. No ':' (settlement's ledger account names,
 * `merchant:<id>:payable`, parse back to one owner), no spaces, no braces (Redis hash tags).
 */
export const ID = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

/** An id request field (see ID); anything else is INVALID_ARGUMENT naming the field. */
export function requireId(value: string, field: string): string {
  if (!ID.test(value)) throw new InvalidArgument(`${field} is required: 1-128 letters, digits or . _ @ + - (no spaces or colons)`);
  return value;
}

const CONTROL = /[\p{Cc}]/u;

/**
 * An idempotency key: 1-200 characters, none of them a control character (PostgreSQL text
 * cannot hold NUL, and a key is printed in logs). INVALID_ARGUMENT otherwise.
 */
export function requireIdempotencyKey(value: string, field = 'idempotency_key'): string {
  if (!value || value.length > 200 || CONTROL.test(value)) throw new InvalidArgument(`${field} is required (1-200 characters, no control characters)`);
  return value;
}

/** True for a canonical UUID in any case. */
export const isUuid = (value: string): boolean => UUID.test(value);

/** A UUID request field, lower-cased; anything else is INVALID_ARGUMENT naming the field. */
export function requireUuid(value: string, field: string): string {
  if (!UUID.test(value)) throw new InvalidArgument(`${field} must be a UUID`);
  return value.toLowerCase();
}

/** A required free-text request field, trimmed, 1 to `max` characters. */
export function requireText(value: string, field: string, max = 128): string {
  const v = value.trim();
  if (!v || v.length > max) throw new InvalidArgument(`${field} is required (1-${max} characters)`);
  return v;
}

const VOUCHER_CODE = /^[A-Za-z0-9-]{4,32}$/;

/** A voucher code as merchants and terminals send it: 4-32 letters, digits or '-' (INVALID_ARGUMENT otherwise). */
export function requireVoucherCode(value: string, field = 'code'): string {
  if (!VOUCHER_CODE.test(value)) throw new InvalidArgument(`${field} must be 4-32 letters, digits or '-'`);
  return value;
}

export const MERCHANT_NAME_MAX = 64;
// Control, format (bidi overrides, zero-width), surrogate, private-use and line/paragraph separators:
// nothing a wrist alert should print or that could disguise one merchant as another.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/u;

/**
 * A merchant's display name as a terminal sends it: optional (empty stays empty), at most
 * {@link MERCHANT_NAME_MAX} characters, printable, no surrounding spaces. INVALID_ARGUMENT otherwise.
 */
export function requireMerchantName(value: string, field = 'merchant_name'): string {
  if (value === '') return value;
  if ([...value].length > MERCHANT_NAME_MAX) throw new InvalidArgument(`${field} must be at most ${MERCHANT_NAME_MAX} characters`);
  if (UNPRINTABLE.test(value)) throw new InvalidArgument(`${field} must be printable text (no control or formatting characters)`);
  if (value.trim() !== value) throw new InvalidArgument(`${field} must not start or end with spaces`);
  return value;
}

// ISO 3166-1 alpha-2 regions the runtime's ICU data names ('ZZ', 'XX' and the like it does not).
const REGIONS = new Intl.DisplayNames(['en'], { type: 'region', fallback: 'none' });

/** An ISO 3166-1 alpha-2 country code (upper case); anything else is INVALID_ARGUMENT naming the field. */
export function requireCountry(value: string, field = 'country'): string {
  if (!/^[A-Z]{2}$/.test(value) || REGIONS.of(value) === undefined) throw new InvalidArgument(`${field} must be an ISO 3166-1 alpha-2 country code such as CN`);
  return value;
}
