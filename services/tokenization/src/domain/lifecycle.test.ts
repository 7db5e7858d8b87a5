import { ForbiddenTokenTransition, tokenTransition, type TokenAction, type TokenState } from './lifecycle';

describe('token lifecycle', () => {
  it.each<[TokenState, TokenAction, TokenState, string]>([
    ['ACTIVE', 'suspend', 'SUSPENDED', 'token.suspended'],
    ['SUSPENDED', 'resume', 'ACTIVE', 'token.resumed'],
    ['ACTIVE', 'delete', 'DELETED', 'token.deleted'],
    ['SUSPENDED', 'delete', 'DELETED', 'token.deleted'],
  ])('%s --%s--> %s', (from, action, to, event) => {
    expect(tokenTransition(from, action)).toEqual({ to, event });
  });

  it.each<[TokenState, TokenAction, RegExp]>([
    ['SUSPENDED', 'suspend', /SUSPENDED token cannot be suspended/],
    ['ACTIVE', 'resume', /ACTIVE token cannot be resumed/],
    ['DELETED', 'resume', /DELETED token cannot be resumed/],
    ['DELETED', 'suspend', /DELETED/],
    ['DELETED', 'delete', /DELETED token cannot be deleted/],
  ])('refuses %s --%s-->', (from, action, message) => {
    expect(() => tokenTransition(from, action)).toThrow(ForbiddenTokenTransition);
    expect(() => tokenTransition(from, action)).toThrow(message);
  });
});
