import { randomBytes } from 'crypto';
import { readFileSync } from 'node:fs';
import { PaymentStatus, type GatewayServiceClient, type Payment } from '../gen/wristpay/gateway/v1/gateway';
import type { PromiseClient } from '../platform/grpc/client';
import { repoPath } from '../platform/paths';

/** A fresh 4-byte unpredictable number, as an EMV terminal sends with each transaction. */
export function terminalNonce(): Buffer {
  return randomBytes(4);
}

/** A demo merchant as the back office onboards it (one line of sim/demo-merchants.txt). */
export interface DemoMerchant {
  merchantId: string;
  /** ISO 18245 merchant category code. */
  mcc: string;
  /** ISO 3166-1 alpha-2. */
  country: string;
  /** ISO 4217: what its payments are authorized and settled in. */
  settlementCurrency: string;
  /** What alerts show on the wrist and the phone (the gateway's registry keeps it). */
  displayName: string;
}

/**
 * The demo merchants by id. From sim/demo-merchants.txt, which the certificate scripts read too:
 * each merchant calls the gateway as `merchantIdentity(id)`.
 */
export const DEMO_MERCHANTS: ReadonlyMap<string, DemoMerchant> = new Map(
  readFileSync(repoPath('sim', 'demo-merchants.txt'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line): [string, DemoMerchant] => {
      const [merchantId, mcc, country, settlementCurrency, ...name] = line.split(/\s+/);
      if (!settlementCurrency || name.length === 0) throw new Error(`sim/demo-merchants.txt: "${line}" is not "id mcc country currency display name"`);
      return [merchantId!, { merchantId: merchantId!, mcc: mcc!, country: country!, settlementCurrency, displayName: name.join(' ') }];
    }),
);

/** A merchant's caller identity: the CN of its client certificate, which the gateway binds its calls to. */
export const merchantIdentity = (merchantId: string): string => `merchant.${merchantId}`;

/** The name a merchant's terminal sends with each payment; empty for a merchant it does not know. */
export function merchantName(merchantId: string): string {
  return DEMO_MERCHANTS.get(merchantId)?.displayName ?? '';
}

/** Still being decided: the gateway has not given its final answer (WatchPayment keeps streaming). */
export const isUndecided = (status: PaymentStatus): boolean => status === PaymentStatus.PAYMENT_STATUS_RECEIVED || status === PaymentStatus.PAYMENT_STATUS_CHALLENGE_REQUIRED;

/**
 * The terminal follows a payment it was told to wait for (a step-up) with WatchPayment until the
 * gateway decides it: each status it went through, in order, and the payment as decided. The
 * stream starts at once (call it before the phone may answer); `timeoutMs` is its deadline.
 */
export async function watchPayment(
  gateway: PromiseClient<GatewayServiceClient>,
  paymentId: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<{ statuses: PaymentStatus[]; payment: Payment }> {
  const statuses: PaymentStatus[] = [];
  let last: Payment | undefined;
  for await (const { payment } of gateway.watchPayment({ paymentId, merchantId: '' }, { deadlineMs: options.timeoutMs ?? 30_000, ...(options.signal ? { signal: options.signal } : {}) })) {
    if (!payment) continue;
    if (statuses[statuses.length - 1] !== payment.status) statuses.push(payment.status);
    last = payment;
  }
  if (!last || isUndecided(last.status)) throw new Error(`WatchPayment of ${paymentId} ended before the payment was decided`);
  return { statuses, payment: last };
}
