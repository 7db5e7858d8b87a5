import { createHmac, hkdfSync } from 'node:crypto';
import { InvalidArgument } from '../../../../platform/errors';
import { generateTokenNumber, isLuhnValid } from '../../../../platform/payment-crypto';

/** A validated funding source: what the vault encrypts. */
export type Funding = { kind: 'card'; cardNumber: string } | { kind: 'wallet'; walletAccountId: string };

/** The wire shape of wristpay.tokenization.v1.FundingSource (ts-proto oneof). */
export type FundingSourceMessage = { source?: { $case: 'cardNumber'; value: string } | { $case: 'walletAccountId'; value: string } | undefined } | undefined;

const CARD = /^[0-9]{12,19}$/;

/**
 * Checks a funding source from the wire. Messages say what is wrong, never echo the value: a
 * caller's typo in a card number must not end up in their logs or ours.
 */
export function validateFunding(source: FundingSourceMessage): Funding {
  const s = source?.source;
  if (!s) throw new InvalidArgument('funding_source is required: card_number or wallet_account_id');
  if (s.$case === 'cardNumber') {
    if (!CARD.test(s.value)) throw new InvalidArgument('funding_source.card_number must be 12 to 19 digits');
    if (!isLuhnValid(s.value)) throw new InvalidArgument('funding_source.card_number fails the Luhn check');
    return { kind: 'card', cardNumber: s.value };
  }
  const id = s.value.trim();
  if (!id || id.length > 128) throw new InvalidArgument('funding_source.wallet_account_id is required (1-128 characters)');
  return { kind: 'wallet', walletAccountId: id };
}

/** The last four characters of the funding source, the only part ever shown. */
export function fundingLast4(funding: Funding): string {
  return (funding.kind === 'card' ? funding.cardNumber : funding.walletAccountId).slice(-4);
}

/**
 * A keyed fingerprint of the funding source. Used where a value must be compared but not
 * kept, e.g. the idempotency record's request hash: an unkeyed hash of a card number can be
 * brute-forced from its BIN, a keyed one cannot without the vault's master key.
 */
export function fundingFingerprint(masterKey: Buffer, funding: Funding): string {
  const key = Buffer.from(hkdfSync('sha256', masterKey, Buffer.from('wristpay-funding-fingerprint-v1'), Buffer.from('funding'), 32));
  const value = funding.kind === 'card' ? `card:${funding.cardNumber}` : `wallet:${funding.walletAccountId}`;
  return createHmac('sha256', key).update(value).digest('base64');
}

/**
 * A fresh device token number from the token BIN range that is never the funding card number
 * itself (a BIN range can overlap a real card's); uniqueness across the vault is the store's job.
 */
export function newTokenNumber(bin: string, length: number, funding: Funding, random?: (size: number) => Buffer): string {
  for (;;) {
    const candidate = generateTokenNumber(bin, length, random);
    if (funding.kind !== 'card' || candidate !== funding.cardNumber) return candidate;
  }
}
