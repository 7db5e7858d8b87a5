import type { AlertsServiceServer } from '../../../gen/wristpay/alerts/v1/alerts';
import type { CallerPolicy } from '../../../platform/grpc/server';
import type { Config } from './config';

/** Who may read alert feeds (deny by default): the phone-facing wallet backend (ALERT_CALLERS). */
export function alertsPolicy(config: Pick<Config, 'ALERT_CALLERS'>): CallerPolicy<AlertsServiceServer> {
  return { streamAlerts: config.ALERT_CALLERS, listAlerts: config.ALERT_CALLERS };
}
