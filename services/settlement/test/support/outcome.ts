import { DomainError } from '../../../../platform/errors';

/**
 * What a step of a store scenario came to: its value, or the domain error it was refused with as
 * `Name: message` (so PostgreSQL and PGlite runs can be compared as JSON). Anything else throws.
 */
export async function outcome<T>(fn: () => Promise<T>): Promise<T | string> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DomainError) return `${err.name}: ${err.message}`;
    throw err;
  }
}
