import { FailedPrecondition } from '../../../../platform/errors';

export type DeviceState = 'PENDING_PAIRING' | 'ACTIVE' | 'SUSPENDED' | 'LOST' | 'DEREGISTERED';
export type LifecycleAction = 'pair' | 'suspend' | 'resume' | 'report_lost' | 'deregister';

/**
 * PENDING_PAIRING → ACTIVE ⇄ SUSPENDED; ACTIVE/SUSPENDED → LOST or DEREGISTERED (both terminal).
 * A band whose pairing was never completed may be deregistered too, so an abandoned
 * registration stops counting toward the account's band limit; it cannot be reported lost
 * (it never paid, so there is nothing to cut off).
 */
const TRANSITIONS: Record<LifecycleAction, { from: readonly DeviceState[]; to: DeviceState; event: string }> = {
  pair: { from: ['PENDING_PAIRING'], to: 'ACTIVE', event: 'device.paired' },
  suspend: { from: ['ACTIVE'], to: 'SUSPENDED', event: 'device.suspended' },
  resume: { from: ['SUSPENDED'], to: 'ACTIVE', event: 'device.resumed' },
  report_lost: { from: ['ACTIVE', 'SUSPENDED'], to: 'LOST', event: 'device.lost' },
  deregister: { from: ['PENDING_PAIRING', 'ACTIVE', 'SUSPENDED'], to: 'DEREGISTERED', event: 'device.deregistered' },
};

const DONE: Record<LifecycleAction, string> = { pair: 'paired', suspend: 'suspended', resume: 'resumed', report_lost: 'reported lost', deregister: 'deregistered' };

export class ForbiddenTransition extends FailedPrecondition {
  constructor(from: DeviceState, action: LifecycleAction) {
    super(`a ${from} device cannot be ${DONE[action]}`);
  }
}

/** The state `action` leads to from `from`, and the event it publishes; throws when forbidden. */
export function transition(from: DeviceState, action: LifecycleAction): { to: DeviceState; event: string } {
  const rule = TRANSITIONS[action];
  if (!rule.from.includes(from)) throw new ForbiddenTransition(from, action);
  return { to: rule.to, event: rule.event };
}

/** States in which a band may hold a live session and pay. */
export const canPay = (state: DeviceState): boolean => state === 'ACTIVE';
