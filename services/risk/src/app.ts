import { ConfigError } from '../../../platform/config';
import { RiskServiceService } from '../../../gen/wristpay/risk/v1/risk';
import { contract, GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { connectEventBus } from '../../../platform/nats';
import { openRedis, redisTarget } from '../../../platform/redis';
import { composeService, listenEarly, type Own, type RunningService } from '../../../platform/service';
import { SERVICE, type Config } from './config';
import { DecisionStore } from './decision-store';
import { RiskEvents } from './events';
import { startConsumers } from './consumers';
import { FeatureStore } from './feature-store';
import { riskPolicy } from './policy';
import { RuleBook } from './rulebook';
import { Scorer } from './scorer';
import { riskService } from './server';
import { SignalStore } from './signals';
import { UnsavedDecisions, type UnsavedDecisionsOptions } from './unsaved-decisions';

export interface RiskOptions {
  /** ms since the epoch; tests inject one to walk feature windows to their edges. */
  clock?: () => number;
  /** Retry and log timing of the unsaved-decision backlog (tests shorten them). */
  unsaved?: Pick<UnsavedDecisionsOptions, 'retryMinMs' | 'retryMaxMs' | 'logEveryMs'>;
}

export interface RunningRisk extends RunningService {
  port: number;
  rules: RuleBook;
  /** Decisions waiting in memory for Redis (tests watch it drain). */
  unsaved: Pick<UnsavedDecisions, 'size'>;
}

/**
 * Composes the risk service and starts serving; `port` is the bound port. Risk must answer (in
 * degraded mode) while Redis is down, so an unreachable Redis does not stop it from starting;
 * a malformed REDIS_URL is still a config error. NATS is waited for (NOT_SERVING meanwhile), like
 * everywhere else.
 */
export async function startRisk(config: Config, log: Logger, options: RiskOptions = {}): Promise<RunningRisk> {
  const clock = options.clock ?? Date.now;
  return composeService(log, async (own) => {
    const rules = own(
      await RuleBook.open({ rules: config.RISK_RULES_FILE, model: config.RISK_MODEL_FILE }, log).catch((err: Error) => {
        throw new ConfigError(`invalid configuration: RISK_RULES_FILE or RISK_MODEL_FILE: ${err.message}`);
      }),
      (r) => r.close(),
    );
    /** When the drain began: the backlog's last write gets what is left of the grace period. */
    let stopping = 0;
    const server = GrpcServer.fromConfig(config, { service: SERVICE, log, services: [contract({ definition: RiskServiceService, allowedCallers: riskPolicy })] });
    const ownMarkingStop: Own = (resource, close) =>
      own(resource, (r) => {
        stopping ||= Date.now();
        return close(r);
      });
    const { port, serve } = await listenEarly(ownMarkingStop, server, config.RISK_PORT, config.SHUTDOWN_GRACE_MS);
    const bus = own(await connectEventBus(config, SERVICE, log), (b) => b.close());
    const redis = own(openRedis(redisTarget(config), log), (r) => r.disconnect());
    // Wait for Redis (at most its connect timeout) so the first payments are not scored degraded
    // for nothing; if it does not answer, start anyway: the client keeps reconnecting.
    await redis.connect().catch((err: Error) => log.warn({ err: err.message }, 'Redis unreachable at start; scoring in degraded mode until it answers'));

    const decisions = new DecisionStore(redis, config.REDIS_KEY_PREFIX, config.RISK_DECISION_TTL_DAYS);
    const events = own(new RiskEvents(bus, log), (e) => e.drain(config.SHUTDOWN_GRACE_MS));
    const unsaved = own(new UnsavedDecisions(decisions, { max: config.RISK_DECISION_BACKLOG_MAX, log, ...options.unsaved }), (u) =>
      u.close(config.SHUTDOWN_GRACE_MS - (Date.now() - stopping)),
    );
    // Redis is back: write what waited now rather than at the next retry.
    redis.on('ready', () => unsaved.flushSoon());
    const features = new FeatureStore(redis, config.REDIS_KEY_PREFIX, {
        dedupeMs: config.RISK_DEDUPE_TTL_HOURS * 3_600_000,
        maxEvents: config.RISK_WINDOW_MAX_EVENTS,
        merchantMemoryMs: config.RISK_MERCHANT_MEMORY_DAYS * 86_400_000,
        profileMs: config.RISK_PROFILE_TTL_DAYS * 86_400_000,
        areaHalfLifeMs: config.RISK_AREA_HALF_LIFE_DAYS * 86_400_000,
        learnedKeepMs: config.RISK_DECISION_TTL_DAYS * 86_400_000,
      });
    const scorer = new Scorer({
      features,
      decisions,
      unsaved,
      book: rules,
      events,
      policy: { challengeAt: config.RISK_CHALLENGE_THRESHOLD, declineAt: config.RISK_DECLINE_THRESHOLD, maxReasons: config.RISK_MAX_REASONS },
      fallbackMaxApproveMinor: config.RISK_FALLBACK_MAX_APPROVE_MINOR,
      redisTimeoutMs: config.RISK_REDIS_TIMEOUT_MS,
      eventTime: { maxPastMs: config.RISK_EVENT_MAX_PAST_SECONDS * 1000, maxFutureMs: config.RISK_EVENT_MAX_FUTURE_SECONDS * 1000 },
      clock,
      log,
    });
    if (config.RISK_RULES_WATCH) rules.watch();
    // While Redis is down a handler fails and JetStream redelivers later: nothing is lost.
    if (config.RISK_CONSUMERS) {
      own(await startConsumers(bus, { signals: new SignalStore(redis, config.REDIS_KEY_PREFIX), decisions, unsaved, unlearn: (id) => features.unlearn(id, clock()), clock }, log), (c) => c.stop());
    }
    serve([riskService({ scorer, decisions, unsaved, clock, log })]);
    const { rules: set, model } = rules.current();
    log.info({ port, rulesetVersion: set.version, modelVersion: model.version }, 'risk listening');
    return { port, rules, unsaved };
  });
}
