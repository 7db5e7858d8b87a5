import type { History, ScoreInput } from './features';

/** Builders for the domain's unit tests (and the service tests): a quiet, ordinary payment. */
export const input = (over: Partial<ScoreInput> = {}): ScoreInput => ({
  paymentId: 'p1',
  accountId: 'a1',
  deviceId: 'd1',
  tokenId: 't1',
  merchantId: 'm1',
  amountMinor: 1_000,
  currency: 'EUR',
  location: undefined,
  channelQr: false,
  sessionLive: true,
  sessionAgeSeconds: 600,
  deviceAgeSeconds: 90 * 86_400,
  cryptogramFailures: 0,
  ...over,
});

const quiet = { count1m: 1, count1h: 1, count24h: 1, sum1m: 1_000, sum1h: 1_000, sum24h: 1_000 };
export const history = (over: Partial<History> = {}): History => ({
  at: 1_700_000_000_000,
  device: quiet,
  account: quiet,
  merchants1h: 1,
  merchantFirst: false,
  amountN: 0,
  amountMean: 0,
  amountM2: 0,
  places: [],
  deviceBlocked: false,
  tokenBlocked: false,
  refusals1h: 0,
  declines1h: 0,
  ...over,
});
