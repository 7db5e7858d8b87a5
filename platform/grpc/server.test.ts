import { status } from '@grpc/grpc-js';
import { FailedPrecondition } from '../errors';
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
  });

  it('hides anything unexpected behind a generic INTERNAL message', () => {
    const leaked = toServiceError(Object.assign(new Error('duplicate key'), { code: '23505', detail: 'Key (pan)=(4111111111111111) already exists.' }), log, '/m');
    expect(leaked).toEqual({ code: status.INTERNAL, details: 'internal error' });
  });
});
