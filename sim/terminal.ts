import { randomBytes } from 'crypto';

/** A fresh 4-byte unpredictable number, as an EMV terminal sends with each transaction. */
export function terminalNonce(): Buffer {
  return randomBytes(4);
}

/** The display names the demo merchants' terminals send (what the wrist alert shows). */
const MERCHANT_NAMES: Record<string, string> = {
  'm-coffee-lab': 'Coffee Lab',
  'm-fruit-stall': 'Fruit Stall',
  'm-electronics': 'Electronics Mart',
  'm-pharmacy': 'Pharmacy',
  'm-gift-cards': 'Gift Card Kiosk',
  'm-bakery': 'Corner Bakery',
};

/** The name a merchant's terminal sends with each payment; empty for a merchant it does not know. */
export function merchantName(merchantId: string): string {
  return MERCHANT_NAMES[merchantId] ?? '';
}
