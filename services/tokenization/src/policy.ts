import type { TokenizationServiceServer } from '../../../gen/wristpay/tokenization/v1/tokenization';
import type { CallerPolicy } from '../../../platform/grpc/server';
import type { Config } from './config';

/**
 * Who may call each tokenization method (deny by default: platform/grpc/server.ts). The wallet
 * backend provisions a band's token and manages it for the owner; the gateway verifies
 * credentials on the payment path; only settlement may see a funding source (Detokenize); key
 * rotation is for people in the back office. An offline code is a payment credential:
 * OFFLINE_CODE_CALLERS (the wallet backend), never the gateway or a terminal.
 */
export function tokenizationPolicy(config: Pick<Config, 'OFFLINE_CODE_CALLERS'>): CallerPolicy<TokenizationServiceServer> {
  return {
    provisionToken: ['wallet'],
    verifyPayment: ['gateway'],
    issueOfflineCode: config.OFFLINE_CODE_CALLERS,
    verifyOfflineCode: ['gateway'],
    getToken: ['wallet', 'gateway', 'backoffice'],
    suspendToken: ['wallet', 'backoffice'],
    resumeToken: ['wallet', 'backoffice'],
    deleteToken: ['wallet', 'backoffice'],
    detokenize: ['settlement'],
    rotateKeys: ['backoffice'],
  };
}
