import { randomBytes } from 'crypto';

/** A fresh 4-byte unpredictable number, as an EMV terminal sends with each transaction. */
export function terminalNonce(): Buffer {
  return randomBytes(4);
}
