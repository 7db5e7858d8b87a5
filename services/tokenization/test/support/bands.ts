import { randomUUID } from 'node:crypto';
import type { Channel } from '../../../../gen/wristpay/common/v1/common';
import type { DeviceRegistryServiceClient } from '../../../../gen/wristpay/device_registry/v1/device_registry';
import type { ProvisionTokenRequest, TokenizationServiceClient } from '../../../../gen/wristpay/tokenization/v1/tokenization';
import type { PromiseClient } from '../../../../platform/grpc/client';
import type { Band } from '../../../../sim/band';
import { pairBand, registerBand } from '../../../../sim/wallet';

/**
 * Onboarding as the phone does it: registers and pairs a band for `accountId`, provisions a token
 * on `fundingSource` for `channels` and installs the wrapped token key on the band. Used by the
 * tokenization tests and bench/tokenization-verify.ts (so it imports nothing from jest).
 */
export async function bandWithToken(
  registry: PromiseClient<DeviceRegistryServiceClient>,
  vault: PromiseClient<TokenizationServiceClient>,
  accountId: string,
  fundingSource: ProvisionTokenRequest['fundingSource'],
  channels: Channel[],
): Promise<{ band: Band; tokenId: string; tokenNumber: string }> {
  const band = await registerBand(registry, accountId);
  await pairBand(registry, band, accountId);
  const res = await vault.provisionToken({ idempotencyKey: randomUUID(), deviceId: band.deviceId!, accountId, fundingSource, channels });
  band.installToken({ tokenId: res.token!.tokenId, tokenNumber: res.tokenNumber, wrapped: res.wrappedTokenKey! });
  return { band, tokenId: res.token!.tokenId, tokenNumber: res.tokenNumber };
}
