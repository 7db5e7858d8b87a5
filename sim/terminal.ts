import { randomBytes } from 'crypto';
import { readFileSync } from 'node:fs';
import { repoPath } from '../platform/paths';

/** A fresh 4-byte unpredictable number, as an EMV terminal sends with each transaction. */
export function terminalNonce(): Buffer {
  return randomBytes(4);
}

/**
 * The demo merchants by id, with the display name each one's terminal sends (what the wrist
 * alert shows). From sim/demo-merchants.txt, which the certificate scripts read too: each
 * merchant calls the gateway as `merchantIdentity(id)`.
 */
export const DEMO_MERCHANTS: ReadonlyMap<string, string> = new Map(
  readFileSync(repoPath('sim', 'demo-merchants.txt'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line): [string, string] => {
      const [id, ...name] = line.split(/\s+/);
      return [id!, name.join(' ')];
    }),
);

/** A merchant's caller identity: the CN of its client certificate, which the gateway binds its calls to. */
export const merchantIdentity = (merchantId: string): string => `merchant.${merchantId}`;

/** The name a merchant's terminal sends with each payment; empty for a merchant it does not know. */
export function merchantName(merchantId: string): string {
  return DEMO_MERCHANTS.get(merchantId) ?? '';
}
