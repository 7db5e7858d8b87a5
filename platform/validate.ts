import { InvalidArgument } from './errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
