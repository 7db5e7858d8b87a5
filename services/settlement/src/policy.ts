import type { SettlementServiceServer } from '../../../gen/wristpay/settlement/v1/settlement';
import type { CallerPolicy } from '../../../platform/grpc/server';
import type { Config } from './config';

/**
 * Who may call each settlement method (deny by default: platform/grpc/server.ts). The gateway
 * moves a payment's money (holds, captures, voids, refunds, vouchers); the wallet backend acts
 * for the buyer (funding top-ups, delivery confirmation, disputes, balances) and sets a band's
 * limits (LIMIT_CALLERS); people in the back office resolve disputes, run payouts and make
 * manual adjustments (TopUp). Nothing may be called by another service just because it is in
 * the mesh.
 */
export function settlementPolicy(config: Pick<Config, 'LIMIT_CALLERS'>): CallerPolicy<SettlementServiceServer> {
  return {
    topUp: ['wallet', 'backoffice'],
    placeHold: ['gateway'],
    capture: ['gateway'],
    void: ['gateway'],
    confirmDelivery: ['wallet'],
    refund: ['gateway'],
    openDispute: ['wallet'],
    resolveDispute: ['backoffice'],
    getBalance: ['wallet', 'gateway', 'backoffice'],
    runPayouts: ['backoffice'],
    getTransfer: ['wallet', 'backoffice'],
    setBandLimits: config.LIMIT_CALLERS,
    getBandLimits: ['wallet', 'backoffice'],
    issueVoucher: ['gateway'],
    getVoucher: ['gateway'],
    quoteVoucher: ['gateway'],
  };
}
