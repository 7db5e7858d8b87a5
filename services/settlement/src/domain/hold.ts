import { FailedPrecondition } from '../../../../platform/errors';
import { formatMoney } from './money';

export type HoldStatus = 'PENDING' | 'CAPTURED' | 'VOIDED' | 'EXPIRED';
export type EscrowStatus = 'HELD' | 'DISPUTED' | 'RELEASED' | 'REFUNDED';

/**
 * The money state of one hold. A PENDING hold only reserves `amount` on the wallet. Capture
 * ends it and moves `captured` into the merchant's escrow; from then on
 * captured = escrow + released + refunded.
 */
export interface HoldMoney {
  status: HoldStatus;
  escrowStatus: EscrowStatus | null;
  currency: string;
  amount: bigint;
  captured: bigint;
  escrow: bigint;
  released: bigint;
  refunded: bigint;
  /** expires_at has passed (the sweeper may not have run yet). */
  lapsed: boolean;
}

/** The escrow columns after a movement, and where the money moved from. */
export interface EscrowChange {
  escrowStatus: EscrowStatus;
  escrow: bigint;
  released: bigint;
  refunded: bigint;
  /** Taken from the merchant's escrow (positive) for this movement. */
  fromEscrow: bigint;
  /** Taken back from the merchant's payable (refund after release). */
  fromPayable: bigint;
}

const money = (h: HoldMoney, minor: bigint) => formatMoney(minor, h.currency);

function requirePending(h: HoldMoney, verb: string): void {
  if (h.status !== 'PENDING') throw new FailedPrecondition(`hold is ${h.status}; only a PENDING hold can be ${verb}`);
}

function requireCaptured(h: HoldMoney, verb: string): void {
  if (h.status !== 'CAPTURED') throw new FailedPrecondition(`hold is ${h.status}; only a CAPTURED hold can be ${verb}`);
}

/** How much a capture takes: all of the hold when `requested` is unset, else at most the hold. The rest is released. */
export function planCapture(h: HoldMoney, requested: bigint | undefined): bigint {
  requirePending(h, 'captured');
  if (h.lapsed) throw new FailedPrecondition('hold has expired; it can no longer be captured');
  const captured = requested ?? h.amount;
  if (captured > h.amount) throw new FailedPrecondition(`capture of ${money(h, captured)} exceeds the held ${money(h, h.amount)}`);
  return captured;
}

/** A PENDING hold may be voided (even past its expiry: either way the reservation is released once). */
export function assertVoidable(h: HoldMoney): void {
  requirePending(h, 'voided');
}

/** Escrow → merchant payable: what ConfirmDelivery, auto-release and a dispute resolved for the merchant do. */
export function planRelease(h: HoldMoney, underDispute = false): EscrowChange {
  requireCaptured(h, 'released');
  if (!underDispute && h.escrowStatus === 'DISPUTED') throw new FailedPrecondition('escrow is frozen by an open dispute; resolve the dispute instead');
  if (h.escrowStatus === 'RELEASED') throw new FailedPrecondition('escrow was already released to the merchant');
  if (h.escrowStatus === 'REFUNDED' || h.escrow === 0n) throw new FailedPrecondition('nothing left in escrow: it was refunded to the buyer');
  if (underDispute && h.escrowStatus !== 'DISPUTED') throw new FailedPrecondition(`escrow is ${h.escrowStatus}, not under dispute`);
  return { escrowStatus: 'RELEASED', escrow: 0n, released: h.released + h.escrow, refunded: h.refunded, fromEscrow: h.escrow, fromPayable: 0n };
}

/**
 * Money back to the buyer, never more than was captured and not yet refunded. From escrow while
 * it is held; from the merchant's payable once released (netted from the next payout).
 */
export function planRefund(h: HoldMoney, amount: bigint): EscrowChange {
  requireCaptured(h, 'refunded');
  if (h.escrowStatus === 'DISPUTED') throw new FailedPrecondition('escrow is frozen by an open dispute; resolve the dispute instead');
  const refundable = h.captured - h.refunded;
  if (amount > refundable) {
    throw new FailedPrecondition(`refund of ${money(h, amount)} exceeds what is refundable (${money(h, refundable)} of ${money(h, h.captured)} captured)`);
  }
  if (h.escrowStatus === 'RELEASED') {
    return { escrowStatus: 'RELEASED', escrow: h.escrow, released: h.released - amount, refunded: h.refunded + amount, fromEscrow: 0n, fromPayable: amount };
  }
  const escrow = h.escrow - amount;
  return { escrowStatus: escrow === 0n ? 'REFUNDED' : 'HELD', escrow, released: h.released, refunded: h.refunded + amount, fromEscrow: amount, fromPayable: 0n };
}

/** A dispute freezes escrow that is still held; money already released is disputed with Refund. */
export function assertDisputable(h: HoldMoney): void {
  requireCaptured(h, 'disputed');
  if (h.escrowStatus === 'DISPUTED') throw new FailedPrecondition('this hold already has an open dispute');
  if (h.escrowStatus === 'RELEASED') throw new FailedPrecondition('escrow was already released to the merchant; ask for a Refund instead');
  if (h.escrowStatus === 'REFUNDED' || h.escrow === 0n) throw new FailedPrecondition('nothing left in escrow: it was refunded to the buyer');
}

/** A dispute resolved for the buyer: all that is frozen in escrow goes back to the wallet. */
export function planDisputeRefund(h: HoldMoney): EscrowChange {
  requireCaptured(h, 'refunded');
  if (h.escrowStatus !== 'DISPUTED') throw new FailedPrecondition(`escrow is ${h.escrowStatus}, not under dispute`);
  return { escrowStatus: 'REFUNDED', escrow: 0n, released: h.released, refunded: h.refunded + h.escrow, fromEscrow: h.escrow, fromPayable: 0n };
}
