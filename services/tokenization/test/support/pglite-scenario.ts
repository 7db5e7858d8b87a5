import { randomBytes, randomUUID } from 'node:crypto';
import { Channel } from '../../../../gen/wristpay/common/v1/common';
import { ChallengePurpose, DeviceRegistryServiceClient } from '../../../../gen/wristpay/device_registry/v1/device_registry';
import { TokenizationServiceClient, TokenStatus, VerifyResult } from '../../../../gen/wristpay/tokenization/v1/tokenization';
import { Band } from '../../../../sim/band';
import { testClient, testEnv, testLogger } from '../../../../test/support/services';
import { startDeviceRegistry } from '../../../device-registry/src/app';
import { readConfig as readRegistryConfig } from '../../../device-registry/src/config';
import { startTokenization } from '../../src/app';
import { readConfig } from '../../src/config';

// Child-process entry (see register-ts.js): tokenization on embedded PGlite, as `npm start` runs
// it without DATABASE_URL, beside a device-registry on PostgreSQL (REGISTRY_DATABASE_URL: one
// PGlite start is slow enough); prints what it saw as one JSON line. The parent passes
// SCENARIO_PREFIX and watches that prefix's events.
(async () => {
  const prefix = process.env.SCENARIO_PREFIX!;
  const b64 = () => randomBytes(32).toString('base64');
  const registry = await startDeviceRegistry(readRegistryConfig(testEnv(prefix, { DEVICE_REGISTRY_PORT: '0', DATABASE_URL: process.env.REGISTRY_DATABASE_URL })), testLogger('device-registry'));
  const vault = await startTokenization(
    readConfig(
      testEnv(prefix, {
        TOKENIZATION_PORT: '0',
        PGLITE_DIR: 'memory://',
        DEVICE_REGISTRY_ADDR: `127.0.0.1:${registry.port}`,
        TOKEN_MASTER_KEY: b64(),
        VAULT_KEKS: `1:${b64()},2:${b64()}`,
        VAULT_ACTIVE_KEY_VERSION: '2',
      }),
    ),
    testLogger('tokenization'),
  );
  const registryClient = testClient(DeviceRegistryServiceClient, registry.port);
  const client = testClient(TokenizationServiceClient, vault.port);
  try {
    const band = Band.create();
    const accountId = `acct-${randomUUID()}`;
    const { device } = await registryClient.registerDevice({ idempotencyKey: randomUUID(), accountId, model: band.model, serial: band.serial, ed25519PublicKey: band.ed25519PublicKey, x25519PublicKey: band.x25519PublicKey });
    band.deviceId = device!.deviceId;
    const c = await registryClient.createChallenge({ deviceId: band.deviceId, purpose: ChallengePurpose.CHALLENGE_PURPOSE_PAIRING });
    const signature = band.signChallenge({ purpose: 'PAIRING', challengeId: c.challengeId, nonce: Buffer.from(c.nonce) });
    await registryClient.pairDevice({ idempotencyKey: randomUUID(), deviceId: band.deviceId, accountId, challengeId: c.challengeId, signature });
    const res = await client.provisionToken({ idempotencyKey: randomUUID(), deviceId: band.deviceId, accountId, fundingSource: { source: { $case: 'cardNumber', value: '4111111111111111' } }, channels: [Channel.CHANNEL_BAND_TAP] });
    band.installToken({ tokenId: res.token!.tokenId, tokenNumber: res.tokenNumber, wrapped: res.wrappedTokenKey! });
    const pay = async () => {
      const p = band.tap({ amountMinor: 700n, currency: 'EUR', merchantId: 'm', terminalNonce: randomBytes(4) });
      return { tokenNumber: p.tokenNumber, atc: p.atc, amount: { amountMinor: 700n, currency: 'EUR' }, merchantId: 'm', terminalNonce: p.terminalNonce, cryptogram: p.cryptogram, channel: Channel.CHANNEL_BAND_TAP, paymentId: randomUUID() };
    };
    const results: string[] = [];
    const verify = async (req: Awaited<ReturnType<typeof pay>>) => results.push(VerifyResult[(await client.verifyPayment(req)).verification!.result]!);
    const first = await pay();
    await verify(first);
    // The same payment retried (same payment id): the first answer, from the idempotency row.
    await verify(first);
    // The same tap as another payment: a replay.
    await verify({ ...first, paymentId: randomUUID() });
    await registryClient.reportLost({ idempotencyKey: randomUUID(), deviceId: band.deviceId });
    // The lost band's token is suspended by the device-event consumer, then refused.
    const until = Date.now() + 5_000;
    while ((await client.getToken({ tokenId: res.token!.tokenId })).token!.status !== TokenStatus.TOKEN_STATUS_SUSPENDED && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await verify(await pay());
    const rotated = await client.rotateKeys({ idempotencyKey: randomUUID() });
    process.stdout.write(`${JSON.stringify({ results, kekVersion: rotated.keyVersion, rewrapped: rotated.rewrapped.toString(), tokenId: res.token!.tokenId })}\n`);
  } finally {
    client.close();
    registryClient.close();
    await vault.stop();
    await registry.stop();
  }
})().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
