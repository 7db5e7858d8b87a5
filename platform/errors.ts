import { status } from '@grpc/grpc-js';

/**
 * Base of every error a domain may throw on purpose. The gRPC edge maps it to `code` and sends
 * `message` to the caller, so a message must be readable and must never carry a secret
 * (card number, key, cryptogram). Anything that is not a DomainError becomes INTERNAL.
 */
export abstract class DomainError extends Error {
  abstract readonly code: status;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
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
