import { FailedPrecondition } from '../../../../platform/errors';

export type TokenState = 'ACTIVE' | 'SUSPENDED' | 'DELETED';
export type TokenAction = 'suspend' | 'resume' | 'delete';

/** ACTIVE ⇄ SUSPENDED; either → DELETED, which is terminal. */
const TRANSITIONS: Record<TokenAction, { from: readonly TokenState[]; to: TokenState; event: string }> = {
  suspend: { from: ['ACTIVE'], to: 'SUSPENDED', event: 'token.suspended' },
  resume: { from: ['SUSPENDED'], to: 'ACTIVE', event: 'token.resumed' },
  delete: { from: ['ACTIVE', 'SUSPENDED'], to: 'DELETED', event: 'token.deleted' },
};

const PAST: Record<TokenAction, string> = { suspend: 'suspended', resume: 'resumed', delete: 'deleted' };

export class ForbiddenTokenTransition extends FailedPrecondition {
  constructor(from: TokenState, action: TokenAction) {
    super(`a ${from} token cannot be ${PAST[action]}`);
  }
}

/** The state `action` leads to from `from`, and the event it publishes; throws when forbidden. */
export function tokenTransition(from: TokenState, action: TokenAction): { to: TokenState; event: string } {
  const rule = TRANSITIONS[action];
  if (!rule.from.includes(from)) throw new ForbiddenTokenTransition(from, action);
  return { to: rule.to, event: rule.event };
}
