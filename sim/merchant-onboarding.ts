import { status as GrpcStatus } from '@grpc/grpc-js';
import { MerchantStatus, type Merchant, type MerchantAdminServiceClient } from '../gen/wristpay/gateway/v1/gateway';
import type { PromiseClient } from '../platform/grpc/client';
import { DEMO_MERCHANTS, type DemoMerchant } from './terminal';

/**
 * The back office onboards `merchant` with the gateway (MerchantAdminService, as `backoffice`),
 * as often as it likes: the idempotency key is the merchant's own, so a rerun gets the first
 * answer back, and ALREADY_EXISTS (the merchant was registered some other way, or under the same
 * key with other details) counts as onboarded. Either way GetMerchant then says what the registry
 * holds now, and a merchant that cannot take the demo's payments (suspended, another currency) is
 * an error naming why. `note` says where the registry differs harmlessly (its display name wins).
 */
export async function onboardMerchant(backoffice: PromiseClient<MerchantAdminServiceClient>, merchant: DemoMerchant): Promise<{ merchant: Merchant; note?: string }> {
  try {
    await backoffice.createMerchant({
      idempotencyKey: `onboard-merchant:${merchant.merchantId}`,
      merchantId: merchant.merchantId,
      displayName: merchant.displayName,
      mcc: merchant.mcc,
      country: merchant.country,
      settlementCurrency: merchant.settlementCurrency,
    });
  } catch (err) {
    if ((err as { code?: number }).code !== GrpcStatus.ALREADY_EXISTS) throw err;
  }
  const registered = (await backoffice.getMerchant({ merchantId: merchant.merchantId })).merchant!;
  if (registered.status !== MerchantStatus.MERCHANT_STATUS_ACTIVE) {
    throw new Error(`merchant ${merchant.merchantId} is ${MerchantStatus[registered.status].replace('MERCHANT_STATUS_', '')} in the gateway (${registered.statusReason || 'no reason given'}): reactivate it in the back office`);
  }
  if (registered.settlementCurrency !== merchant.settlementCurrency) {
    throw new Error(`merchant ${merchant.merchantId} is registered to settle in ${registered.settlementCurrency}, not ${merchant.settlementCurrency}`);
  }
  const note = registered.displayName !== merchant.displayName ? `${merchant.merchantId} is registered as "${registered.displayName}" (the name alerts show), not "${merchant.displayName}"` : undefined;
  return note ? { merchant: registered, note } : { merchant: registered };
}

/** Onboards every demo merchant (sim/demo-merchants.txt); the registry's view of each, and any notes. */
export async function onboardDemoMerchants(backoffice: PromiseClient<MerchantAdminServiceClient>): Promise<{ merchants: Merchant[]; notes: string[] }> {
  const merchants: Merchant[] = [];
  const notes: string[] = [];
  for (const demo of DEMO_MERCHANTS.values()) {
    const { merchant, note } = await onboardMerchant(backoffice, demo);
    merchants.push(merchant);
    if (note) notes.push(note);
  }
  return { merchants, notes };
}
