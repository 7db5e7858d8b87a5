import type { FieldShape, MessageShape } from './descriptor';

/** Protobuf wire types (https://protobuf.dev/programming-guides/encoding/#structure). */
export const WIRE = { varint: 0, i64: 1, len: 2, sgroup: 3, egroup: 4, i32: 5 } as const;

const WIRE_NAMES = ['varint', 'i64', 'length-delimited', 'group start', 'group end', 'i32', 'invalid (6)', 'invalid (7)'];

const VARINT_TYPES = new Set(['TYPE_INT32', 'TYPE_INT64', 'TYPE_UINT32', 'TYPE_UINT64', 'TYPE_SINT32', 'TYPE_SINT64', 'TYPE_BOOL', 'TYPE_ENUM']);
const I64_TYPES = new Set(['TYPE_DOUBLE', 'TYPE_FIXED64', 'TYPE_SFIXED64']);
const I32_TYPES = new Set(['TYPE_FLOAT', 'TYPE_FIXED32', 'TYPE_SFIXED32']);

/** The wire type a field's values are encoded with (a repeated scalar may also come packed: {@link packable}). */
export function wireTypeOf(field: Pick<FieldShape, 'type'>): number {
  if (VARINT_TYPES.has(field.type)) return WIRE.varint;
  if (I64_TYPES.has(field.type)) return WIRE.i64;
  if (I32_TYPES.has(field.type)) return WIRE.i32;
  return WIRE.len;
}

/** True for a repeated numeric field, whose values may come packed in one length-delimited record. */
export const packable = (field: Pick<FieldShape, 'type' | 'repeated'>): boolean => field.repeated && wireTypeOf(field) !== WIRE.len;

// Nested messages deeper than this are refused (protobuf's own parsers stop at 100).
const MAX_DEPTH = 64;

class Malformed extends Error {}

/**
 * Why `bytes` is not a well-formed encoding of `shape`, or undefined when it is: a truncated
 * record, an illegal tag (field number 0, wire type 6 or 7, a group: no WristPay message has one),
 * a varint longer than 10 bytes, or a field the contract knows sent with another wire type than
 * its type has (a client built from another contract; the generated decoders would silently drop
 * it, and a payment must not go ahead without a field its sender set). Nested messages are
 * checked too. Unknown field numbers are skipped, as protobuf requires.
 */
export function wireFormatProblem(bytes: Uint8Array, shape: MessageShape): string | undefined {
  try {
    scan(bytes, 0, bytes.length, shape, '', 0);
    return undefined;
  } catch (err) {
    if (err instanceof Malformed) return err.message;
    throw err;
  }
}

function scan(buf: Uint8Array, start: number, end: number, shape: MessageShape, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new Malformed(`${path || 'request'} nests messages deeper than ${MAX_DEPTH}`);
  let pos = start;
  const varint = (what: string): bigint => {
    let value = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw new Malformed(`${what} is truncated`);
      const b = buf[pos++]!;
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (!(b & 0x80)) return value;
    }
    throw new Malformed(`${what} is a varint longer than 10 bytes`);
  };
  while (pos < end) {
    const tag = varint(`a tag in ${path || 'the request'}`);
    const number = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (number < 1 || number > 0x1fffffff) throw new Malformed(`${path || 'request'} has a field number ${number}, which is not a field number`);
    const field = shape.byNumber.get(number);
    const name = `${path}${field?.name ?? `field ${number}`}`;
    if (wire > WIRE.i32 || wire === WIRE.sgroup || wire === WIRE.egroup) throw new Malformed(`${name} has wire type ${WIRE_NAMES[wire]}, which no WristPay message uses`);
    if (field && wire !== wireTypeOf(field) && !(wire === WIRE.len && packable(field))) {
      throw new Malformed(`${name} is encoded as ${WIRE_NAMES[wire]}, but its type, ${field.type.slice(5).toLowerCase()}, is ${WIRE_NAMES[wireTypeOf(field)]}`);
    }
    if (wire === WIRE.varint) varint(name);
    else if (wire === WIRE.i64 || wire === WIRE.i32) {
      pos += wire === WIRE.i64 ? 8 : 4;
      if (pos > end) throw new Malformed(`${name} is truncated`);
    } else {
      const length = varint(`the length of ${name}`);
      if (length > BigInt(end - pos)) throw new Malformed(`${name} is truncated`);
      const from = pos;
      pos += Number(length);
      if (field?.message) scan(buf, from, pos, field.message, `${name}.`, depth + 1);
      else if (field && packable(field)) scanPacked(buf, from, pos, field, name);
    }
  }
}

function scanPacked(buf: Uint8Array, start: number, end: number, field: FieldShape, name: string): void {
  const wire = wireTypeOf(field);
  if (wire !== WIRE.varint) {
    if ((end - start) % (wire === WIRE.i64 ? 8 : 4)) throw new Malformed(`${name} is truncated`);
    return;
  }
  let pos = start;
  while (pos < end) {
    let i = 0;
    while (pos < end && buf[pos]! & 0x80) {
      pos++;
      if (++i >= 10) throw new Malformed(`${name} holds a varint longer than 10 bytes`);
    }
    if (pos >= end) throw new Malformed(`${name} is truncated`);
    pos++;
  }
}
