import { trace } from '@opentelemetry/api';
import { AlertKind, AlertsServiceService, type Alert, type AlertsServiceServer } from '../../../gen/wristpay/alerts/v1/alerts';
import { InvalidArgument } from '../../../platform/errors';
import { requireId } from '../../../platform/validate';
import { register, type Handlers } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { ATTR } from '../../../platform/telemetry/attributes';
import type { Config } from './config';
import type { AlertRow, AlertStore } from './store';
import { alertsPolicy } from './policy';
import type { FeedWakeups } from './wakeups';

export interface AlertsDeps {
  config: Pick<Config, 'ALERT_CALLERS' | 'ALERTS_POLL_MS'>;
  store: AlertStore;
  wakeups: FeedWakeups;
  log: Logger;
}

/** Alerts a stream reads from the database at a time (a client catching up gets them page by page). */
export const STREAM_PAGE = 100;
const LIST_DEFAULT = 100;
const LIST_MAX = 500;
const INT64_MAX = 2n ** 63n - 1n;

const requireAccountId = (value: string): string => requireId(value, 'account_id');

function requireAfter(value: bigint): bigint {
  if (value > INT64_MAX) throw new InvalidArgument('after_sequence is larger than any sequence');
  return value;
}

export function toAlert(row: AlertRow): Alert {
  return {
    accountId: row.account_id,
    sequence: BigInt(row.sequence),
    eventId: row.event_id,
    kind: AlertKind[`ALERT_KIND_${row.kind}`],
    deviceId: row.device_id,
    paymentId: row.payment_id,
    occurredAt: row.occurred_at,
    wrist: {
      merchantName: row.wrist_merchant_name,
      amount: row.wrist_amount_minor === null || row.wrist_currency === null ? undefined : { amountMinor: BigInt(row.wrist_amount_minor), currency: row.wrist_currency },
      outcome: row.wrist_outcome,
    },
    phone: { title: row.phone_title, body: row.phone_body, merchantId: row.merchant_id, declineReason: row.decline_reason },
    stepUp: stepUpOf(row),
  };
}

/** The stored step-up (only a CHALLENGED alert has one; the columns are all set or all null). */
function stepUpOf(row: AlertRow): Alert['stepUp'] {
  if (row.step_up_challenge_id === null || row.step_up_nonce === null || row.step_up_expires_at === null) return undefined;
  return { challengeId: row.step_up_challenge_id, nonce: Buffer.from(row.step_up_nonce), expiresAt: row.step_up_expires_at };
}

export function alertsService(deps: AlertsDeps) {
  const { config, store, wakeups, log } = deps;

  const handlers: Handlers<AlertsServiceServer> = {
    /**
     * Sends the stored alerts after after_sequence page by page, then each new one as it is
     * stored. `last` is the last sequence sent and every read asks for what follows it, so
     * nothing is sent twice; alerts commit in sequence order (store.ts), so what follows it is
     * never read with a hole. The watch is opened before the first read, so a wake-up that comes
     * while a page is being read or sent is kept for the next wait.
     */
    async streamAlerts(req, ctx, send) {
      const accountId = requireAccountId(req.accountId);
      let last = requireAfter(req.afterSequence);
      trace.getActiveSpan()?.setAttribute(ATTR.accountId, accountId);
      const watch = wakeups.watch(accountId);
      log.debug({ accountId, after: last.toString() }, 'alert stream opened');
      try {
        while (!ctx.signal.aborted) {
          const page = await store.after(accountId, last, STREAM_PAGE);
          for (const row of page) {
            await send({ alert: toAlert(row) });
            last = BigInt(row.sequence);
          }
          if (page.length < STREAM_PAGE) await watch.wait(config.ALERTS_POLL_MS, ctx.signal);
        }
      } finally {
        watch.close();
        log.debug({ accountId, last: last.toString() }, 'alert stream closed');
      }
    },

    async listAlerts(req) {
      const accountId = requireAccountId(req.accountId);
      const after = requireAfter(req.afterSequence);
      const limit = req.limit === 0 ? LIST_DEFAULT : req.limit;
      if (limit < 1 || limit > LIST_MAX) throw new InvalidArgument(`limit must be between 1 and ${LIST_MAX} (0 means ${LIST_DEFAULT})`);
      trace.getActiveSpan()?.setAttribute(ATTR.accountId, accountId);
      const alerts = (await store.after(accountId, after, limit)).map(toAlert);
      return { alerts, lastSequence: alerts.length ? alerts[alerts.length - 1]!.sequence : after };
    },
  };

  return register<AlertsServiceServer>({
    definition: AlertsServiceService,
    handlers,
    allowedCallers: alertsPolicy(config),
  });
}
