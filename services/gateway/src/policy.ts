import type { GatewayServiceServer, MerchantAdminServiceServer } from '../../../gen/wristpay/gateway/v1/gateway';
import type { CallerPolicy } from '../../../platform/grpc/server';
import type { Config } from './config';
import { MERCHANT_CALLERS } from './merchants';

export interface GatewayPolicy {
  gateway: CallerPolicy<GatewayServiceServer>;
  merchantAdmin: CallerPolicy<MerchantAdminServiceServer>;
}

/**
 * Who may call each gateway method (deny by default: every method is listed, and a caller not
 * on its list is PERMISSION_DENIED before the handler runs). Merchant methods admit any
 * `merchant.<id>` identity; the handler then binds the call to that merchant.
 */
export function gatewayPolicy(config: Pick<Config, 'WALLET_CALLERS' | 'BACKOFFICE_CALLERS'>): GatewayPolicy {
  const merchant = MERCHANT_CALLERS;
  return {
    gateway: {
      authorize: merchant,
      getPayment: merchant,
      watchPayment: merchant,
      capture: merchant,
      void: merchant,
      refund: merchant,
      issueVoucher: merchant,
      getVoucher: merchant,
      confirmPayment: config.WALLET_CALLERS,
      declinePayment: config.WALLET_CALLERS,
    },
    merchantAdmin: {
      createMerchant: config.BACKOFFICE_CALLERS,
      getMerchant: config.BACKOFFICE_CALLERS,
      listMerchants: config.BACKOFFICE_CALLERS,
      suspendMerchant: config.BACKOFFICE_CALLERS,
      reactivateMerchant: config.BACKOFFICE_CALLERS,
    },
  };
}
