import { status as Status } from '@grpc/grpc-js';
import { withRetries, type Attempt } from './load';

const grpcError = (code: number, details = 'x') => Object.assign(new Error(details), { code, details });

describe('withRetries (what a terminal does with one request)', () => {
  test('retries UNAVAILABLE and DEADLINE_EXCEEDED with the same call until it answers, recording every attempt', async () => {
    const attempts: Attempt[] = [];
    const codes = [Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED];
    let calls = 0;
    const r = await withRetries('authorize', attempts, 10_000, async () => {
      const code = codes[calls++];
      if (code !== undefined) throw grpcError(code);
      return 'answer';
    });
    expect(r).toEqual({ value: 'answer', tries: 3, internal: [] });
    expect(attempts.map((a) => a.code)).toEqual([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.OK]);
  });

  test('stops at a code that is not retryable, and keeps an INTERNAL as a bug to report', async () => {
    const attempts: Attempt[] = [];
    const r = await withRetries('capture', attempts, 10_000, async () => {
      throw grpcError(Status.INTERNAL, 'Stream isn\'t writeable');
    });
    expect(r.tries).toBe(1);
    expect(r.error?.code).toBe(Status.INTERNAL);
    expect(r.internal).toEqual(["INTERNAL: Stream isn't writeable"]);
    expect(attempts).toHaveLength(1);
  });

  test('gives up once the retries have run past giveUpMs', async () => {
    const attempts: Attempt[] = [];
    const r = await withRetries('authorize', attempts, 120, async () => {
      throw grpcError(Status.UNAVAILABLE);
    });
    expect(r.error?.code).toBe(Status.UNAVAILABLE);
    expect(r.tries).toBeGreaterThan(1);
    expect(attempts.every((a) => a.code === Status.UNAVAILABLE)).toBe(true);
  });
});
