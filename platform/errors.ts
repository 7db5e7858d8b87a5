import { status } from '@grpc/grpc-js';

/**
 * Base of every error a domain may throw on purpose. The gRPC edge maps it to `code` and sends
 * `message` to the caller, so a message must be readable and must never carry a secret
 * (card number, key, cryptogram). Anything that is not a DomainError becomes INTERNAL.
 */
export abstract class DomainError extends Error {
  abstract readonly code: status;
  /**
   * A stable machine code for this refusal (e.g. `VOUCHER_OF_ANOTHER_MERCHANT`), sent in the
   * status trailers as {@link REASON_KEY}: callers branch on it, never on the message text.
   */
  readonly reason: string | undefined;
  constructor(message: string, reason?: string) {
    super(message);
    this.name = new.target.name;
    this.reason = reason;
  }
}

/** The trailer a refusal's stable reason code travels in. */
export const REASON_KEY = 'wristpay-reason';

/** The stable reason code a gRPC error carries ({@link REASON_KEY}), if any. */
export function reasonOf(err: unknown): string | undefined {
  const metadata = (err as { metadata?: { get(key: string): unknown[] } })?.metadata;
  const value = metadata?.get?.(REASON_KEY)?.[0];
  return typeof value === 'string' ? value : undefined;
}

/** The request is malformed; retrying it unchanged will fail again. */
export class InvalidArgument extends DomainError {
  readonly code = status.INVALID_ARGUMENT;
}

export class NotFound extends DomainError {
  readonly code = status.NOT_FOUND;
}

/** The request is valid but the system is not in a state that allows it. */
export class FailedPrecondition extends DomainError {
  readonly code = status.FAILED_PRECONDITION;
}

export class AlreadyExists extends DomainError {
  readonly code = status.ALREADY_EXISTS;
}

export class PermissionDenied extends DomainError {
  readonly code = status.PERMISSION_DENIED;
}

/** A dependency is down; the caller may retry an idempotent call. */
export class Unavailable extends DomainError {
  readonly code = status.UNAVAILABLE;
}

/** An idempotency key came back with a different request than the one it first answered. */
export class IdempotencyKeyReused extends DomainError {
  readonly code = status.ALREADY_EXISTS;
  constructor() {
    super('idempotency key was already used for a different request');
  }
}

/** Status codes a client may retry, and only on idempotent methods. */
export const RETRYABLE_CODES: readonly status[] = [status.UNAVAILABLE, status.DEADLINE_EXCEEDED];

/** Refusals a downstream service gives for reasons the original caller can act on. */
const CALLER_FAULT: ReadonlySet<status> = new Set([status.INVALID_ARGUMENT, status.NOT_FOUND, status.FAILED_PRECONDITION, status.ALREADY_EXISTS, status.OUT_OF_RANGE]);

/** A downstream service's refusal, passed on to the caller with its status and message. */
export class DownstreamRefusal extends DomainError {
  constructor(
    readonly code: status,
    message: string,
    reason?: string,
  ) {
    super(message, reason);
  }
}

/**
 * Awaits a call a service makes on its caller's behalf (a pass-through such as the gateway's
 * Capture) and turns a refusal that is the caller's to act on (invalid argument, not found,
 * failed precondition, already exists, out of range) into a DownstreamRefusal with the same
 * status and message, instead of an INTERNAL. `also` adds codes that are the caller's to act on
 * for this one call (the gateway relays settlement's PERMISSION_DENIED for another merchant's
 * voucher; in general PERMISSION_DENIED is the mesh refusing this service, not the caller).
 * Anything else is rethrown unchanged.
 */
export async function relayRefusal<T>(call: Promise<T>, also: readonly status[] = []): Promise<T> {
  try {
    return await call;
  } catch (err) {
    const { code, details } = err as { code?: unknown; details?: unknown };
    if (typeof code === 'number' && (CALLER_FAULT.has(code) || also.includes(code)) && typeof details === 'string') throw new DownstreamRefusal(code, details, reasonOf(err));
    throw err;
  }
}
