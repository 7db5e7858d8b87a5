import { ForbiddenTransition, transition, type DeviceState, type LifecycleAction } from './lifecycle';

describe('device lifecycle', () => {
  it.each<[DeviceState, LifecycleAction, DeviceState]>([
    ['PENDING_PAIRING', 'pair', 'ACTIVE'],
    ['ACTIVE', 'suspend', 'SUSPENDED'],
    ['SUSPENDED', 'resume', 'ACTIVE'],
    ['ACTIVE', 'report_lost', 'LOST'],
    ['SUSPENDED', 'report_lost', 'LOST'],
    ['ACTIVE', 'deregister', 'DEREGISTERED'],
    ['SUSPENDED', 'deregister', 'DEREGISTERED'],
    ['PENDING_PAIRING', 'deregister', 'DEREGISTERED'],
  ])('%s --%s--> %s', (from, action, to) => {
    expect(transition(from, action).to).toBe(to);
  });

  it.each<[DeviceState, LifecycleAction]>([
    ['LOST', 'resume'],
    ['LOST', 'pair'],
    ['DEREGISTERED', 'resume'],
    ['DEREGISTERED', 'report_lost'],
    ['PENDING_PAIRING', 'suspend'],
    ['PENDING_PAIRING', 'resume'],
    ['PENDING_PAIRING', 'report_lost'],
    ['LOST', 'deregister'],
    ['DEREGISTERED', 'deregister'],
    ['DEREGISTERED', 'pair'],
    ['ACTIVE', 'pair'],
    ['ACTIVE', 'resume'],
  ])('refuses %s --%s-->', (from, action) => {
    expect(() => transition(from, action)).toThrow(ForbiddenTransition);
  });

  it('names the refused action in plain words', () => {
    expect(() => transition('LOST', 'report_lost')).toThrow('a LOST device cannot be reported lost');
    expect(() => transition('DEREGISTERED', 'resume')).toThrow('a DEREGISTERED device cannot be resumed');
  });
});
