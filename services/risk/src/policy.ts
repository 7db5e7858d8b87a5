import type { RiskServiceServer } from '../../../gen/wristpay/risk/v1/risk';
import type { CallerPolicy } from '../../../platform/grpc/server';

/**
 * Who may call each risk method (deny by default: platform/grpc/server.ts). The gateway scores
 * payments and tells risk how a step-up ended; analysts in the back office explain decisions
 * and label payments.
 */
export const riskPolicy: CallerPolicy<RiskServiceServer> = {
  score: ['gateway'],
  explain: ['backoffice'],
  feedback: ['gateway', 'backoffice'],
};
