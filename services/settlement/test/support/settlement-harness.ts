import { randomUUID } from 'node:crypto';
import type { Money } from '../../../../gen/wristpay/common/v1/common';
import { SettlementServiceClient, type PlaceHoldRequest } from '../../../../gen/wristpay/settlement/v1/settlement';
import { openDb, type Db } from '../../../../platform/db';
import { watchEvents } from '../../../../test/support/events';
import { freshDatabase, requireServers } from '../../../../test/support/servers';
import { testClient, testEnv, testLogger, uniqueName } from '../../../../test/support/services';
import { startSettlement } from '../../src/app';
import { readConfig } from '../../src/config';
import { checkLedger } from '../../src/invariants';

export const eur = (minor: number | bigint, currency = 'EUR'): Money => ({ amountMinor: BigInt(minor), currency });

type Service = Awaited<ReturnType<typeof startSettlement>>;
type Client = ReturnType<typeof testClient<SettlementServiceClient>>;
type Events = Awaited<ReturnType<typeof watchEvents>>;
type Database = Awaited<ReturnType<typeof freshDatabase>>;

/**
 * One settlement service on port 0 with its own PostgreSQL database, NATS prefix and event
 * watcher, plus a second connection to the ledger for the invariant checker.
 */
export class Harness {
  private constructor(
    readonly prefix: string,
    readonly database: Database,
    readonly events: Events,
    readonly ledgerDb: Db,
    private readonly env: Record<string, string>,
    public service: Service,
    public client: Client,
  ) {}

  static async start(env: Record<string, string> = {}): Promise<Harness> {
    await requireServers('PostgreSQL', 'NATS');
    const prefix = uniqueName();
    const database = await freshDatabase();
    const events = await watchEvents(prefix);
    const fullEnv = { DATABASE_URL: database.url, SETTLEMENT_PORT: '0', ...env };
    const service = await startSettlement(readConfig(testEnv(prefix, fullEnv)), testLogger('settlement'));
    const ledgerDb = await openDb({ databaseUrl: database.url, poolSize: 2 });
    return new Harness(prefix, database, events, ledgerDb, fullEnv, service, testClient(SettlementServiceClient, service.port));
  }

  /** Stops the service (relay, sweeper, consumer and all); `resume` starts it again on the same database and prefix. */
  async halt(): Promise<void> {
    this.client.close();
    await this.service.stop();
  }

  async resume(): Promise<void> {
    this.service = await startSettlement(readConfig(testEnv(this.prefix, this.env)), testLogger('settlement'));
    this.client = testClient(SettlementServiceClient, this.service.port);
  }

  /** Another settlement replica on the same database and NATS prefix, with extra environment (e.g. mTLS); the caller stops it. */
  replica(env: Record<string, string>): Promise<Service> {
    return startSettlement(readConfig(testEnv(this.prefix, { ...this.env, ...env })), testLogger('settlement'));
  }

  /** The invariants every test must leave intact. */
  async expectLedgerSound(): Promise<void> {
    const result = await checkLedger(this.ledgerDb);
    expect(result.violations).toEqual([]);
  }

  topUp(accountId: string, minor: number | bigint, currency = 'EUR') {
    return this.client.topUp({ idempotencyKey: randomUUID(), accountId, amount: eur(minor, currency), sourceReference: `bank-${randomUUID()}` });
  }

  async balance(accountId: string, currency = 'EUR') {
    const b = await this.client.getBalance({ accountId, currency });
    return { available: b.available!.amountMinor, held: b.held!.amountMinor, posted: b.posted!.amountMinor };
  }

  holdRequest(accountId: string, minor: number | bigint, over: Partial<PlaceHoldRequest> = {}): PlaceHoldRequest {
    return { idempotencyKey: randomUUID(), paymentId: randomUUID(), accountId, merchantId: 'merchant-42', amount: eur(minor), ttlSeconds: 0n, deviceId: randomUUID(), voucherCode: '', merchantName: '', ...over };
  }

  /** Events of `type` about one hold (or one transfer, for top-ups). */
  about(type: string, id: string) {
    return this.events.ofType(type).filter((e) => {
      const v = e.event.payload?.$case === 'ledger' ? e.event.payload.value : undefined;
      return v && (v.holdId === id || v.transferId === id);
    });
  }

  async stop(): Promise<void> {
    this.client.close();
    await this.service.stop();
    await this.ledgerDb.close();
    await this.events.close();
    await this.database.drop();
  }
}

export const startHarness = (env: Record<string, string> = {}) => Harness.start(env);

/** The number of idempotency records stored under `key`: 0 proves a refused request wrote nothing. */
export async function idempotencyRecords(db: Db, key: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM idempotency_keys WHERE key = $1', [key]);
  return Number(rows[0]!.n);
}

export { uniqueName };
