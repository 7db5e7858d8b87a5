import fc from 'fast-check';
import type { FieldShape, MessageShape } from '../../platform/grpc/descriptor';
import { packable, WIRE, wireTypeOf } from '../../platform/grpc/wire-format';

/**
 * A request as fields on the wire, small enough to print when a property fails: long values
 * are described (`{ long, char }`) and only made when encoded.
 */
export type WireValue =
  | { varint: bigint }
  | { i64: bigint }
  | { double: number }
  | { i32: number }
  | { text: string }
  /** `char` repeated `long` times: an oversized string (or bytes, for an ASCII char). */
  | { long: number; char: string }
  /** Length-delimited bytes as hex: bytes fields, invalid UTF-8. */
  | { hex: string }
  /** Several varints in one length-delimited record (a packed repeated field). */
  | { packed: bigint[] }
  | { message: WireField[] };

export interface WireField {
  field: string;
  number: number;
  value: WireValue;
}

export interface WireRequest {
  /** What makes the request one the mesh must refuse (absent: per-field oddities only). */
  defect?: string;
  fields: WireField[];
  /** Hex bytes appended raw to the request (wire-level garbage). */
  tail?: string;
}

// ---- encoding ---------------------------------------------------------------------------------

const U64 = (1n << 64n) - 1n;

function varint(value: bigint): number[] {
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? b | 0x80 : b);
  } while (v);
  return out;
}

const tag = (number: number, wire: number): number[] => varint((BigInt(number) << 3n) | BigInt(wire));

function payload(value: WireValue): { wire: number; bytes: Uint8Array } {
  const len = (bytes: Uint8Array) => ({ wire: WIRE.len, bytes });
  if ('varint' in value) return { wire: WIRE.varint, bytes: Uint8Array.from(varint(value.varint)) };
  if ('i64' in value) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, value.i64));
    return { wire: WIRE.i64, bytes: b };
  }
  if ('double' in value) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value.double);
    return { wire: WIRE.i64, bytes: b };
  }
  if ('i32' in value) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value.i32 >>> 0);
    return { wire: WIRE.i32, bytes: b };
  }
  if ('text' in value) return len(Buffer.from(value.text, 'utf8'));
  if ('long' in value) return len(Buffer.from(value.char.repeat(value.long), 'utf8'));
  if ('hex' in value) return len(Buffer.from(value.hex, 'hex'));
  if ('packed' in value) return len(Uint8Array.from(value.packed.flatMap(varint)));
  return len(encodeFields(value.message));
}

function encodeFields(fields: WireField[], tail = ''): Buffer {
  const parts: Uint8Array[] = [];
  for (const f of fields) {
    const { wire, bytes } = payload(f.value);
    parts.push(Uint8Array.from(tag(f.number, wire)));
    if (wire === WIRE.len) parts.push(Uint8Array.from(varint(BigInt(bytes.length))));
    parts.push(bytes);
  }
  parts.push(Buffer.from(tail, 'hex'));
  return Buffer.concat(parts);
}

/** The request's bytes. */
export const encodeRequest = (request: WireRequest): Buffer => encodeFields(request.fields, request.tail);

/** The request for a failure message: bigints as text, long values as their description. */
export const describeRequest = (request: WireRequest): string => JSON.stringify(request, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v), 1).replace(/\n\s*/g, ' ');

// ---- values that look like what callers send, with per-field oddities ------------------------

/** What the mesh the requests go to already holds, so requests can name it. */
export interface RequestContext {
  /** A merchant onboarded in the gateway (the merchant identity calls as it). */
  merchantId: string;
  /** Ids and values that exist in the mesh, by request field name (`device_id`, `hold_id`, `code`, ...). */
  known: Record<string, string[]>;
}

const TIMESTAMP = 'google.protobuf.Timestamp';
const MAX_DEPTH = 3;

const ID = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,24}$/;
// Ids with what no id may hold: braces (Redis hash tags), colons (ledger account names), spaces; or too long.
const ODD_IDS = ['', ' ', 'a:b', '{tag}', 'a b', 'merchant:x:payable', '-leading', 'x'.repeat(129), 'ünïcode', '../etc'];
const ODD_TEXT = ['', '   ', 'x'.repeat(4096), '\u202eevil', 'line\nbreak', 'tab\t', '\u0001ctl', '🙂', ' padded '];

/** A string field's value, by what its name says it holds: something a caller would send, or `odd`ly wrong for it. */
function text(field: FieldShape, ctx: RequestContext, odd: boolean): fc.Arbitrary<string> {
  const name = field.name;
  const pick = (valid: fc.Arbitrary<string>, wrong: string[]) => (odd ? fc.oneof(fc.constantFrom(...wrong), fc.string({ unit: 'grapheme', maxLength: 40 })) : valid);
  const known = ctx.known[name]?.length ? [fc.constantFrom(...ctx.known[name]!)] : [];
  if (name === 'idempotency_key') return pick(fc.uuid(), ['', 'k'.repeat(201), 'key\u0007bell', ' ']);
  if (name === 'merchant_id') return pick(fc.oneof({ weight: 8, arbitrary: fc.constant(ctx.merchantId) }, fc.stringMatching(ID)), ODD_IDS);
  if (name.endsWith('_id')) return pick(known.length ? fc.oneof({ weight: 3, arbitrary: known[0]! }, fc.uuid(), fc.stringMatching(ID)) : fc.oneof(fc.uuid(), fc.stringMatching(ID)), ODD_IDS);
  // The onboarded merchant is paid in EUR (another real currency is wrong for it, not malformed).
  if (name.endsWith('currency')) return pick(fc.constant('EUR'), ['USD', 'eur', 'EURO', 'XXX', 'E€R', '', 'ZZZ']);
  if (name === 'country') return pick(fc.constantFrom('CN', 'DE'), ['ZZ', 'cn', 'CHN', '']);
  if (name === 'mcc') return pick(fc.constantFrom('5812', '5411'), ['0000', '99999', 'abcd', '']);
  if (name === 'business_date') return pick(fc.constantFrom('2026-11-25', '2025-01-01'), ['2026-02-30', '9999-12-31', '0000-01-01', '2026-1-5', 'tomorrow', '']);
  if (name === 'token_number') return pick(fc.oneof(...known, fc.stringMatching(/^[0-9]{16,19}$/)), ['', '1234', 'abcdabcdabcdabcd', '4111 1111 1111 1111']);
  if (name === 'voucher_code') return pick(fc.constantFrom('', '', ...(ctx.known.code ?? [])), ['a b', 'x'.repeat(33), 'AB', '{CODE}', 'NO-SUCH-CODE']);
  if (name.endsWith('code')) return pick(fc.oneof(...known, fc.stringMatching(/^[A-Z0-9-]{4,12}$/), fc.stringMatching(/^[0-9]{8}$/)), ['', 'a b', 'x'.repeat(33), 'AB', '{CODE}']);
  if (name === 'page_token') return pick(fc.constantFrom('', ...(ctx.known[name] ?? [])), ['garbage', '-1', '{}', 'x'.repeat(300)]);
  return pick(fc.oneof(fc.stringMatching(/^[A-Za-z][A-Za-z0-9 .-]{0,30}[A-Za-z0-9]$/), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 })), ODD_TEXT);
}

const U32 = (1n << 32n) - 1n;
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);

/** A scalar field's value as the wire carries it: a plausible one, or an `odd` one (out of range, unknown enum, ...). */
function scalar(field: FieldShape, ctx: RequestContext, odd: boolean): fc.Arbitrary<WireValue> {
  const varints = (valid: fc.Arbitrary<bigint>, wrong: bigint[]) => (odd ? fc.constantFrom(...wrong) : valid).map((v): WireValue => ({ varint: v }));
  const name = field.name;
  switch (field.type) {
    case 'TYPE_STRING':
      return text(field, ctx, odd).map((t): WireValue => ({ text: t }));
    case 'TYPE_BYTES': {
      // The sizes the contract's keys, signatures, nonces and cryptograms have.
      const sizes = name.includes('signature') ? [64] : name.includes('cryptogram') ? [16] : name.includes('nonce') ? [16, 32] : [32];
      const valid = fc.oneof(...sizes.map((n) => fc.uint8Array({ minLength: n, maxLength: n })));
      return (odd ? fc.oneof(fc.uint8Array({ maxLength: 100 }), fc.constant(new Uint8Array(0))) : valid).map((b): WireValue => ({ hex: Buffer.from(b).toString('hex') }));
    }
    case 'TYPE_BOOL':
      // 2 is no bool, but decoders read any non-zero varint as true.
      return varints(fc.constantFrom(0n, 1n), [2n, U32]);
    case 'TYPE_ENUM': {
      const defined = field.enumValues!.map(BigInt);
      // Numbers the enum does not define: an older or newer client's, or nonsense.
      return varints(fc.constantFrom(...(defined.length > 1 ? defined.filter((v) => v !== 0n) : defined)), [0n, 99n, -1n, (1n << 31n) - 1n, -(1n << 31n)]);
    }
    case 'TYPE_INT32':
    case 'TYPE_SINT32':
      return varints(fc.bigInt(1n, 100n), [0n, -1n, (1n << 31n) - 1n, -(1n << 31n), 1n << 40n]);
    case 'TYPE_UINT32':
      return varints(fc.bigInt(1n, 100n), [0n, 101n, U32, I64_MAX, -1n]);
    case 'TYPE_INT64':
    case 'TYPE_SINT64':
      return varints(name.includes('amount') ? fc.bigInt(1n, 100_000n) : fc.bigInt(1n, 3_600n), [0n, -1n, I64_MAX, I64_MIN, 1n << 53n, (1n << 53n) + 1n]);
    case 'TYPE_UINT64':
      return varints(fc.bigInt(0n, 100n), [I64_MAX, 1n << 63n, -1n, 1n << 53n]);
    case 'TYPE_DOUBLE':
      return (odd ? fc.constantFrom(-0, 91, -1000, 1e308, -1e308, 5e-324) : fc.double({ min: -90, max: 90, noNaN: true })).map((d): WireValue => ({ double: d }));
    default:
      // float, fixed32/64 and the like: no WristPay request has one; any bits will do.
      return wireTypeOf(field) === WIRE.i64 ? fc.bigInt(0n, U64).map((v): WireValue => ({ i64: v })) : fc.nat().map((v): WireValue => ({ i32: v }));
  }
}

/** A google.protobuf.Timestamp: within a day or a month from now, or `odd`ly (1970, year 9999, before 1970, nanos out of [0, 1e9)). */
function timestamp(odd: boolean): fc.Arbitrary<WireValue> {
  const now = BigInt(Math.floor(Date.now() / 1000));
  const seconds = odd ? fc.constantFrom(0n, -1n, 253_402_300_799n, now - 86_400n * 365n) : fc.bigInt(now - 60n, now + 86_400n * 30n);
  const nanos = odd ? fc.constantFrom(-1n, 1_000_000_000n, (1n << 31n) - 1n, 0n) : fc.bigInt(0n, 999_999_999n);
  return fc.tuple(seconds, nanos).map(([s, n]) => ({ message: [{ field: 'seconds', number: 1, value: { varint: s } }, { field: 'nanos', number: 2, value: { varint: n } }] }));
}

/** A field reached from the request through nested messages. */
type Site = FieldShape[];

/** Every field of `shape`, and of the messages in it, down to MAX_DEPTH (a Timestamp is one field). */
function sites(shape: MessageShape, depth = 0): Site[] {
  if (depth > MAX_DEPTH) return [];
  return shape.fields.flatMap((f) => [[f], ...(f.message && f.message.fullName !== TIMESTAMP ? sites(f.message, depth + 1).map((s) => [f, ...s]) : [])]);
}

/** A value of `field`; with `odd` (the path on from it to the odd field, empty when it is this one) the odd field's is wrong for it. */
function fieldValue(field: FieldShape, ctx: RequestContext, depth: number, odd: Site | undefined): fc.Arbitrary<WireValue> {
  if (field.message && field.message.fullName !== TIMESTAMP) return plausibleFields(field.message, ctx, depth + 1, odd).map((fields): WireValue => ({ message: fields }));
  if (field.message) return timestamp(odd !== undefined);
  const one = scalar(field, ctx, odd !== undefined);
  if (!packable(field) || wireTypeOf(field) !== WIRE.varint) return one;
  return fc.oneof(one, fc.array(one, { maxLength: 4 }).map((vs): WireValue => ({ packed: vs.map((v) => (v as { varint: bigint }).varint) })));
}

/**
 * A message's fields with values a caller would send, except the field at `odd` (a path from
 * this message), which gets a value wrong for it (an unknown enum number, an out-of-range
 * integer, an empty or malformed id, a date no payment has) or, a message, is left out. Other
 * fields are now and then unset (the empty value in proto3); repeated ones come 0-3 times.
 * Nothing the request guard refuses outright (NUL, invalid UTF-8, oversized, NaN).
 */
export function plausibleFields(shape: MessageShape, ctx: RequestContext, depth = 0, odd?: Site): fc.Arbitrary<WireField[]> {
  if (depth > MAX_DEPTH) return fc.constant([]);
  const perField = shape.fields.map((field) => {
    const here = odd?.[0] === field ? odd.slice(1) : undefined;
    // The odd one out, when it is a whole message: left out (an empty required field).
    if (here && !here.length && field.message && field.message.fullName !== TIMESTAMP) return fc.constant([]);
    const entry = fieldValue(field, ctx, depth, here).map((value): WireField => ({ field: field.name, number: field.number, value }));
    if (here) return entry.map((e) => [e]);
    return field.repeated ? fc.array(entry, { maxLength: 3 }) : fc.option(entry, { freq: 12, nil: undefined }).map((e) => (e ? [e] : []));
  });
  return fc.tuple(...perField).map((lists) => lists.flat());
}

/** Fields of `shape` a caller would send, or all but one (a random field, sometimes nested), which is odd. */
const sensibleOrOneOdd = (shape: MessageShape, ctx: RequestContext, depth = 0): fc.Arbitrary<WireField[]> => {
  const all = sites(shape, depth);
  if (!all.length) return plausibleFields(shape, ctx, depth);
  return fc.option(fc.constantFrom(...all), { freq: 4, nil: undefined }).chain((odd) => plausibleFields(shape, ctx, depth, odd));
};

/**
 * A request with per-field oddities only: all of it what a caller would send (it may well
 * succeed), or all but one field, which is wrong for that field but not malformed. One at a
 * time, so the request goes as far into the handler as that field lets it.
 */
export const plausibleRequest = (shape: MessageShape, ctx: RequestContext): fc.Arbitrary<WireRequest> => sensibleOrOneOdd(shape, ctx).map((fields) => ({ fields }));

// ---- defects the mesh must refuse ---------------------------------------------------------------

const INVALID_UTF8 = ['ff', 'c328', 'a0a1', 'e28228', 'f0288cbc', 'eda080', 'c0af', 'f8a1a1a1a1', '61e282'];

/** The defects a field can carry, each a described value. */
function defectsOf(field: FieldShape): Array<fc.Arbitrary<{ defect: string; value: WireValue }>> {
  const out: Array<fc.Arbitrary<{ defect: string; value: WireValue }>> = [];
  const is = (defect: string, value: fc.Arbitrary<WireValue>) => out.push(value.map((v) => ({ defect, value: v })));
  if (field.type === 'TYPE_STRING') {
    is('NUL in a string', fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })).map(([a, b]): WireValue => ({ text: `${a}\u0000${b}` })));
    is('invalid UTF-8', fc.tuple(fc.stringMatching(/^[a-z0-9]{0,6}$/), fc.constantFrom(...INVALID_UTF8)).map(([a, bad]): WireValue => ({ hex: Buffer.from(a).toString('hex') + bad })));
    is('oversized string', fc.tuple(fc.oneof(fc.integer({ min: 4097, max: 9000 }), fc.constant(1 << 20)), fc.constantFrom('x', 'é', '0')).map(([long, char]): WireValue => ({ long, char })));
  }
  if (field.type === 'TYPE_BYTES') is('oversized bytes', fc.integer({ min: 64 * 1024 + 1, max: 70_000 }).map((long): WireValue => ({ long, char: 'b' })));
  if (field.type === 'TYPE_DOUBLE') is('a double that is not a finite number', fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY).map((d): WireValue => ({ double: d })));
  if (field.message?.fullName === TIMESTAMP) {
    // Seconds no date holds (±2^63), or past year 9999 / before year 1.
    is('a timestamp out of range', fc.constantFrom((1n << 63n) - 1n, -(1n << 63n), 253_402_300_800n, -62_135_596_801n * 2n).map((s): WireValue => ({ message: [{ field: 'seconds', number: 1, value: { varint: s } }] })));
  }
  const wires: WireValue[] = [{ varint: 7n }, { i64: 0x4141414141414141n }, { text: 'wrong-wire' }, { i32: 0x41414141 }];
  const wrong = wires.filter((v) => {
    const wire = payload(v).wire;
    return wire !== wireTypeOf(field) && !(wire === WIRE.len && packable(field));
  });
  is(`${field.name} with the wrong wire type`, fc.constantFrom(...wrong));
  return out;
}

// Bytes no encoder writes: a truncated varint or record, field number 0, wire types 6 and 7, stray groups.
const GARBAGE: Record<string, string> = {
  'a truncated varint': '08ff',
  'a truncated length-delimited field': '7a0561',
  'a truncated fixed64': '79aabb',
  'field number 0': '0001',
  'wire type 6': '7e',
  'wire type 7': '7f',
  'a group start': '7b',
  'a stray group end': '7c',
  'a 11-byte varint': '08ffffffffffffffffffff01',
};

/** Puts `leaf` last in the message at the end of `path` (last, so no later field overrides it), under plausible siblings. */
function place(fields: WireField[], path: Site, leaf: WireField, ctx: RequestContext): fc.Arbitrary<WireField[]> {
  const [outer, ...rest] = path;
  if (!rest.length) return fc.constant([...fields, leaf]);
  return sensibleOrOneOdd(outer!.message!, ctx, path.length).chain((inner) =>
    place(inner, rest, leaf, ctx).map((placed) => [...fields, { field: outer!.name, number: outer!.number, value: { message: placed } }]),
  );
}

/**
 * A request with at least one defect the platform or the handler must refuse as
 * INVALID_ARGUMENT, anywhere in it (nested messages too), among plausible other fields: NUL or
 * invalid UTF-8 in a string, an oversized string or bytes, a NaN or infinite double, a timestamp
 * out of range, a field with the wrong wire type, or bytes that are no protobuf at all.
 */
export function malformedRequest(shape: MessageShape, ctx: RequestContext): fc.Arbitrary<WireRequest> {
  const fieldDefects = sites(shape).flatMap((site) => defectsOf(site[site.length - 1]!).map((defect) => ({ site, defect })));
  const fieldDefect = fc.constantFrom(...fieldDefects).chain(({ site, defect }) =>
    fc.tuple(sensibleOrOneOdd(shape, ctx), defect).chain(([fields, { defect: what, value }]) => {
      const leaf = site[site.length - 1]!;
      const path = site.map((f) => f.name).join('.');
      return place(fields, site, { field: leaf.name, number: leaf.number, value }, ctx).map((placed): WireRequest => ({ defect: `${what} at ${path}`, fields: placed }));
    }),
  );
  const garbage = fc.tuple(sensibleOrOneOdd(shape, ctx), fc.constantFrom(...Object.keys(GARBAGE))).map(([fields, what]): WireRequest => ({ defect: what, fields, tail: GARBAGE[what] }));
  return fc.oneof({ weight: 4, arbitrary: fieldDefect }, { weight: 1, arbitrary: garbage });
}
