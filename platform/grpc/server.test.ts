import { Metadata, status } from '@grpc/grpc-js';
import { FailedPrecondition, PermissionDenied, REASON_KEY, reasonOf } from '../errors';
import { createLogger } from '../log';
import { toServiceError } from './server';

describe('toServiceError', () => {
  const log = createLogger('test', 'silent');

  it('keeps a domain error’s code and message', () => {
    expect(toServiceError(new FailedPrecondition('a LOST band cannot be resumed'), log, '/m')).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'a LOST band cannot be resumed' });
  });

  it('turns a database outage into UNAVAILABLE, not INTERNAL', () => {
    expect(toServiceError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), log, '/m').code).toBe(status.UNAVAILABLE);
    expect(toServiceError(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }), log, '/m').code).toBe(status.UNAVAILABLE);
    expect(toServiceError(new Error('Connection terminated unexpectedly'), log, '/m').code).toBe(status.UNAVAILABLE);
    expect(toServiceError(new Error('timeout exceeded when trying to connect'), log, '/m').code).toBe(status.UNAVAILABLE);
    expect(toServiceError(Object.assign(new Error('sorry, too many clients already'), { code: '53300' }), log, '/m').code).toBe(status.UNAVAILABLE);
    expect(toServiceError(new Error("Stream isn't writeable and enableOfflineQueue options is false"), log, '/m').code).toBe(status.UNAVAILABLE);
  });

  it('hides anything unexpected behind a generic INTERNAL message', () => {
    const leaked = toServiceError(Object.assign(new Error('duplicate key'), { code: '23505', detail: 'Key (pan)=(4111111111111111) already exists.' }), log, '/m');
    expect(leaked).toEqual({ code: status.INTERNAL, details: 'internal error' });
  });

  it('sends a refusal’s reason code in the trailers, where reasonOf finds it', () => {
    const mapped = toServiceError(new PermissionDenied('the voucher was issued by another merchant', 'VOUCHER_OF_ANOTHER_MERCHANT'), log, '/m');
    expect(mapped).toMatchObject({ code: status.PERMISSION_DENIED });
    expect(mapped.metadata!.get(REASON_KEY)).toEqual(['VOUCHER_OF_ANOTHER_MERCHANT']);
    expect(reasonOf(mapped)).toBe('VOUCHER_OF_ANOTHER_MERCHANT');
  });

  it('relays a downstream refusal with its own status, message and reason, never as INTERNAL', () => {
    const trailers = new Metadata();
    trailers.set(REASON_KEY, 'SOME_REASON');
    for (const code of [status.INVALID_ARGUMENT, status.NOT_FOUND, status.FAILED_PRECONDITION, status.ALREADY_EXISTS, status.OUT_OF_RANGE, status.PERMISSION_DENIED]) {
      const downstream = Object.assign(new Error(`${code} refused`), { code, details: 'tap.atc must be between 1 and 2^63-1', metadata: trailers });
      const mapped = toServiceError(downstream, log, '/m');
      expect(mapped).toMatchObject({ code, details: 'tap.atc must be between 1 and 2^63-1' });
      expect(reasonOf(mapped)).toBe('SOME_REASON');
    }
    expect(toServiceError(Object.assign(new Error('x'), { code: status.INTERNAL, details: 'boom', metadata: trailers }), log, '/m')).toEqual({ code: status.INTERNAL, details: 'internal error' });
    expect(toServiceError(Object.assign(new Error('x'), { code: status.RESOURCE_EXHAUSTED, details: 'x', metadata: trailers }), log, '/m').code).toBe(status.UNAVAILABLE);
  });
});
