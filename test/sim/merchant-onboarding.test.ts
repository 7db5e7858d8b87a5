import { randomUUID } from 'node:crypto';
import { MerchantStatus } from '../../gen/wristpay/gateway/v1/gateway';
import { onboardMerchant } from '../../sim/merchant-onboarding';
import type { DemoMerchant } from '../../sim/terminal';
import { startGatewayMesh, type GatewayMesh } from '../support/gateway-mesh';
import { requireServers } from '../support/servers';
import { uniqueName } from '../support/services';

/**
 * What `npm start` relies on to onboard the demo merchants on every start (sim/merchant-onboarding.ts),
 * against the real gateway over mutual TLS as `backoffice`.
 */
describe('onboarding a merchant through the back office', () => {
  let mesh: GatewayMesh;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    mesh = await startGatewayMesh();
  }, 60_000);

  afterAll(async () => {
    await mesh?.stop();
  });

  const merchant = (displayName = 'Test Café'): DemoMerchant => ({ merchantId: uniqueName('m'), mcc: '5814', country: 'CN', settlementCurrency: 'EUR', displayName });

  it('can run again and again (as npm start does on each start): the merchant is onboarded once, ACTIVE', async () => {
    const m = merchant();
    const first = await onboardMerchant(mesh.backoffice, m);
    const again = await onboardMerchant(mesh.backoffice, m);
    expect(first).toEqual({
      merchant: expect.objectContaining({ merchantId: m.merchantId, displayName: 'Test Café', mcc: '5814', status: MerchantStatus.MERCHANT_STATUS_ACTIVE, callerIdentity: `merchant.${m.merchantId}` }),
    });
    expect(again).toEqual(first);
  });

  it('counts a merchant already registered (ALREADY_EXISTS) as onboarded, and notes the name the registry keeps', async () => {
    // Registered by someone else, under another key and name.
    const m = merchant('Corner Café');
    await mesh.backoffice.createMerchant({ idempotencyKey: randomUUID(), merchantId: m.merchantId, displayName: 'Old Café', mcc: m.mcc, country: m.country, settlementCurrency: m.settlementCurrency });
    const found = await onboardMerchant(mesh.backoffice, m);
    expect(found.merchant.displayName).toBe('Old Café');
    expect(found.note).toBe(`${m.merchantId} is registered as "Old Café" (the name alerts show), not "Corner Café"`);

    // The demo list edited after a first start: the merchant's key comes back with other details.
    const edited = merchant('Bakery');
    await onboardMerchant(mesh.backoffice, edited);
    const renamed = await onboardMerchant(mesh.backoffice, { ...edited, displayName: 'New Bakery' });
    expect({ name: renamed.merchant.displayName, status: renamed.merchant.status }).toEqual({ name: 'Bakery', status: MerchantStatus.MERCHANT_STATUS_ACTIVE });
    expect(renamed.note).toMatch(/registered as "Bakery"/);
  });

  it('refuses a merchant that cannot take payments, saying why', async () => {
    const suspended = merchant();
    await onboardMerchant(mesh.backoffice, suspended);
    await mesh.backoffice.suspendMerchant({ idempotencyKey: randomUUID(), merchantId: suspended.merchantId, reason: 'chargebacks under review' });
    await expect(onboardMerchant(mesh.backoffice, suspended)).rejects.toThrow(`merchant ${suspended.merchantId} is SUSPENDED in the gateway (chargebacks under review): reactivate it in the back office`);

    const inUsd = merchant();
    await mesh.backoffice.createMerchant({ idempotencyKey: randomUUID(), merchantId: inUsd.merchantId, displayName: inUsd.displayName, mcc: inUsd.mcc, country: 'US', settlementCurrency: 'USD' });
    await expect(onboardMerchant(mesh.backoffice, inUsd)).rejects.toThrow(`merchant ${inUsd.merchantId} is registered to settle in USD, not EUR`);
  });
});
