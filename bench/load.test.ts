import { status } from '@grpc/grpc-js';
import { counting, run } from './load';

describe('counting', () => {
  it('passes answers through and counts failures by gRPC status name, or by message when there is no code', async () => {
    const errors = new Map<string, number>();
    const one = counting(async (i: number) => {
      if (i % 3 === 1) throw Object.assign(new Error('late'), { code: status.DEADLINE_EXCEEDED });
      if (i % 3 === 2) throw new Error('socket hang up');
      return i * 10;
    }, errors);
    expect(await one(0)).toBe(0);
    expect(await one(3)).toBe(30);
    expect(await one(1)).toBeUndefined();
    const r = await run(6, 2, one);
    expect(r.latencies).toHaveLength(6);
    expect(errors).toEqual(new Map([['DEADLINE_EXCEEDED', 3], ['socket hang up', 2]]));
  });
});
