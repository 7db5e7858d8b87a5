import { InvalidArgument } from '../errors';
import type { MessageShape } from './descriptor';
import { wireFormatProblem } from './wire-format';

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
// Date.UTC reads years 0-99 as 1900-1999: set the year explicitly.
const EARLIEST = new Date(0).setUTCFullYear(1, 0, 1);

const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * A request whose bytes did not decode as its method's message (see {@link strictDeserializer}).
 * It reaches the call wrapper in place of a message, so the caller policy still answers first
 * and the guard then refuses it as INVALID_ARGUMENT.
 */
export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/**
 * Wraps a method's generated request decoder. grpc-js answers INTERNAL when a decoder throws
 * (truncated bytes, an illegal tag), and the generated decoders silently drop a known field sent
 * with the wrong wire type, or stop at a zero tag: bytes that are not a well-formed encoding of
 * `shape` (wire-format.ts) or that the decoder throws on become an {@link UndecodableRequest}.
 * Without a shape (a method outside gen/descriptor.binpb) only the decoder's throws are caught.
 */
export function strictDeserializer<T>(decode: (bytes: Buffer) => T, shape: MessageShape | undefined): (bytes: Buffer) => T | UndecodableRequest {
  const what = shape ? `a valid ${shape.fullName}` : 'a valid request message';
  return (bytes) => {
    const problem = shape && wireFormatProblem(bytes, shape);
    if (problem) return new UndecodableRequest(`request is not ${what}: ${problem}`);
    try {
      return decode(bytes);
    } catch {
      return new UndecodableRequest(`request is not ${what}`);
    }
  };
}

/**
 * Checks what no RPC may receive, whatever the field, so a malformed request is INVALID_ARGUMENT
 * naming the field instead of reaching a store (PostgreSQL refuses NUL in text, a Date out of
 * range throws, a NaN compares false everywhere): strings that were not valid UTF-8 (the
 * decoder put U+FFFD in their place) or hold NUL; strings, bytes and lists past
 * {@link REQUEST_LIMITS}; doubles that are NaN or infinite; timestamps out of range; and bytes
 * that were no well-formed message at all ({@link UndecodableRequest}).
 */
export function guardRequest(request: unknown): void {
  if (request instanceof UndecodableRequest) throw new InvalidArgument(request.reason);
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
