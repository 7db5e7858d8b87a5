/**
 * Stable reason codes one service's refusal carries to another (in the status trailers:
 * platform/errors.ts reasonOf), for the refusals a caller must tell apart from others with the
 * same status. Part of the mesh's contract: never renamed, only added to.
 */
export const REASON = {
  /** settlement: the voucher exists but was issued by another merchant (PERMISSION_DENIED). */
  VOUCHER_OF_ANOTHER_MERCHANT: 'VOUCHER_OF_ANOTHER_MERCHANT',
} as const;
