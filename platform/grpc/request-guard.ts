import { InvalidArgument } from '../errors';

/** Limits every request field is held to before any handler sees it (handlers check tighter ones). */
export const REQUEST_LIMITS = {
  /** Characters in any string field. */
  stringChars: 4096,
  /** Bytes in any bytes field. */
  bytes: 64 * 1024,
  /** Items in any repeated field. */
  items: 1000,
} as const;

// ECMAScript dates hold ±8.64e15 ms; a Timestamp past year 9999 is no date a payment has.
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const EARLIEST = Date.UTC(1, 0, 1);

const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Checks what no RPC may receive, whatever the field, so a malformed request is INVALID_ARGUMENT
 * naming the field instead of reaching a store (PostgreSQL refuses NUL in text, a Date out of
 * range throws, a NaN compares false everywhere): strings that were not valid UTF-8 (the
 * decoder put U+FFFD in their place) or hold NUL; strings, bytes and lists past
 * {@link REQUEST_LIMITS}; doubles that are NaN or infinite; timestamps out of range.
 */
export function guardRequest(request: unknown): void {
  visit(request, '');
}

function visit(value: unknown, path: string): void {
  const field = path || 'request';
  if (typeof value === 'string') {
    if (value.includes('\uFFFD')) throw new InvalidArgument(`${field} must be valid UTF-8`);
    if (value.includes('\u0000')) throw new InvalidArgument(`${field} must not contain NUL characters`);
    if (value.length > REQUEST_LIMITS.stringChars) throw new InvalidArgument(`${field} must be at most ${REQUEST_LIMITS.stringChars} characters`);
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidArgument(`${field} must be a finite number`);
    return;
  }
  if (value instanceof Date) {
    const ms = value.getTime();
    if (!(ms >= EARLIEST && ms <= LATEST)) throw new InvalidArgument(`${field} is out of range`);
    return;
  }
  if (value instanceof Uint8Array) {
    if (value.length > REQUEST_LIMITS.bytes) throw new InvalidArgument(`${field} must be at most ${REQUEST_LIMITS.bytes} bytes`);
    return;
  }
  if (Array.isArray(value)) {
    if (value.length > REQUEST_LIMITS.items) throw new InvalidArgument(`${field} must have at most ${REQUEST_LIMITS.items} items`);
    value.forEach((item, i) => visit(item, `${field}[${i}]`));
    return;
  }
  if (value && typeof value === 'object') {
    // A oneof is { $case, value }: the value is reported under the case's field name.
    const entries = Object.entries(value as Record<string, unknown>);
    const oneof = (value as { $case?: unknown }).$case;
    for (const [key, inner] of entries) {
      if (key === '$case') continue;
      const name = typeof oneof === 'string' && key === 'value' ? snake(oneof) : snake(key);
      visit(inner, path ? `${path}.${name}` : name);
    }
  }
}
