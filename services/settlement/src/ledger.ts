import { randomUUID } from 'node:crypto';
import type { DisputeResolved, LedgerMoved } from '../../../gen/wristpay/events/v1/events';
import { HoldOutcome as HoldOutcomeCode, PlaceHoldResponse } from '../../../gen/wristpay/settlement/v1/settlement';
import type { Queryable } from '../../../platform/db';
import { DomainError, FailedPrecondition, InvalidArgument, NotFound } from '../../../platform/errors';
import { newEvent } from '../../../platform/events';
import { storedAnswer } from '../../../platform/idempotency';
import { enqueueEvent } from '../../../platform/outbox';
import { BandLimits } from './band-limits';
import { disputeResolvedEventId } from './domain/event-ids';
import { escrowOf, FUNDING, payableOf, PAYOUTS, VOUCHERS, vouchersOf, walletOf } from './domain/accounts';
import { assertDisputable, assertVoidable, planCapture, planDisputeRefund, planRefund, planRelease, type EscrowChange } from './domain/hold';
import { toMoney, type Amount } from './domain/money';
import { payoutReport } from './domain/payout-report';
import { compareAccounts, move } from './domain/postings';
import { PLACE_HOLD_SCOPE, runPlaceHold, VoucherChanged, type HoldIdempotency, type HoldOutcome } from './place-hold';
import { holdMoney, LedgerStore, type DisputeRow, type HoldRow, type PayoutRow, type TransferView } from './store';
import { Vouchers } from './vouchers';

const SOURCE = 'settlement';
const DISPUTE_RESOLVED = 'payment.dispute.resolved';

export type { HoldOutcome } from './place-hold';

/** What PlaceHold came to: the answer as stored with the key, and the hold when this call placed it. */
export interface PlacedHold {
  outcome: HoldOutcome;
  hold?: HoldRow;
  response: PlaceHoldResponse;
  /** The key's first answer came back; nothing was done. */
  replayed: boolean;
}

/** Quotes of one voucher PlaceHold tries before giving up on a voucher others keep redeeming. */
const VOUCHER_ATTEMPTS = 3;

const outcomeOf = (response: PlaceHoldResponse): HoldOutcome => HoldOutcomeCode[response.outcome].replace('HOLD_OUTCOME_', '') as HoldOutcome;

export interface PlaceHoldInput {
  paymentId: string;
  accountId: string;
  merchantId: string;
  deviceId: string;
  amount: Amount;
  ttlSeconds: number;
  /** A voucher of merchantId to redeem with the hold; empty or absent for none. */
  voucherCode?: string;
  /** The merchant's display name as the terminal sent it (validated at the edge); carried on the hold and its events. */
  merchantName?: string;
}

export interface LedgerOptions {
  /** Buyer-protection window after capture before escrow releases to the merchant. */
  protectionWindowSeconds: number;
}

export interface Balance {
  posted: bigint;
  held: bigint;
  available: bigint;
}

/**
 * Every money movement the settlement service makes. Each method runs inside the caller's
 * transaction (usually `once`'s), writes its postings and its events to the outbox there, and
 * throws a DomainError when the request cannot be honoured, which rolls everything back.
 */
export class Ledger {
  readonly store = new LedgerStore();
  readonly vouchers = new Vouchers();
  readonly limits = new BandLimits();

  constructor(private readonly options: LedgerOptions) {}

  async topUp(q: Queryable, input: { accountId: string; amount: Amount; sourceReference: string }): Promise<TransferView> {
    const wallet = walletOf(input.accountId);
    const transfer = await this.store.post(q, { kind: 'topup', reference: input.sourceReference, legs: move(FUNDING, wallet, input.amount.currency, input.amount.minor) });
    await this.emit(q, 'payment.topup.completed', {
      transferId: transfer.transferId,
      holdId: '',
      paymentId: '',
      accountId: input.accountId,
      merchantId: '',
      amount: toMoney(input.amount.minor, input.amount.currency),
      merchantName: '',
      deviceId: '',
      discount: undefined,
      voidReason: '',
    });
    return transfer;
  }

  /**
   * Reserves money on the buyer's wallet, in one statement (place_hold,
   * migrations/006_place_hold.sql, which holds the rules): the idempotency key when given, then
   * the voucher, a band reported lost, the band's own limits (frozen, per payment, per day, its
   * row locked) on the net, then the wallet row locked, so concurrent holds on one wallet queue
   * and each sees the reservations committed before it: together they never reserve more than
   * the wallet has. A missing wallet has nothing in it. A refusal is an outcome: nothing is held
   * and no voucher is used. A voucher is priced here first (the hold is for amount − discount; its
   * use counted only when PLACED). On `q` outside a transaction (the server) that is one round
   * trip, two with a voucher; the store tests call it inside one, without a key (there a
   * voucher used up between its quote and its lock fails the transaction instead of pricing again).
   */
  async placeHold(q: Queryable, request: PlaceHoldInput, idempotency?: HoldIdempotency): Promise<PlacedHold> {
    for (let attempt = 1; ; attempt++) {
      let input: PlaceHoldInput & { voucher?: { voucherId: string; discount: bigint } };
      try {
        input = await this.vouchers.price(q, request);
      } catch (err) {
        // A voucher refused now may be the one the key's first call used up: that call's answer stands.
        const first = idempotency && err instanceof DomainError ? await storedAnswer(q, PLACE_HOLD_SCOPE, idempotency.key, idempotency.hash, PlaceHoldResponse) : undefined;
        if (first) return { outcome: outcomeOf(first), response: first, replayed: true };
        throw err;
      }
      const discount = input.voucher?.discount ?? 0n;
      const prospective: HoldRow = {
        holdId: randomUUID(),
        paymentId: input.paymentId,
        accountId: input.accountId,
        merchantId: input.merchantId,
        deviceId: input.deviceId,
        currency: input.amount.currency,
        amount: input.amount.minor,
        gross: input.amount.minor + discount,
        discount,
        voucherId: input.voucher?.voucherId ?? null,
        merchantName: input.merchantName ?? '',
        status: 'PENDING',
        // The database's, filled in from its answer.
        createdAt: new Date(0),
        expiresAt: new Date(0),
        endedAt: null,
        captured: 0n,
        escrow: 0n,
        released: 0n,
        refunded: 0n,
        escrowStatus: null,
        escrowUntil: null,
        lapsed: false,
        escrowDue: false,
      };
      const event = newEvent('payment.hold.placed', SOURCE, { $case: 'ledger', value: holdEvent(prospective, prospective.amount, '', true) });
      try {
        const result = await runPlaceHold(q, { hold: prospective, wallet: walletOf(input.accountId), ttlSeconds: input.ttlSeconds, event, idempotency });
        if (result.replayed) return { outcome: outcomeOf(result.response), response: result.response, replayed: true };
        if (result.outcome !== 'PLACED') return { outcome: result.outcome, response: result.response, replayed: false };
        return { outcome: 'PLACED', hold: { ...prospective, createdAt: result.createdAt!, expiresAt: result.expiresAt! }, response: result.response, replayed: false };
      } catch (err) {
        // Used up or expired since its quote: price it again, which refuses it with the reason.
        if (err instanceof VoucherChanged && attempt < VOUCHER_ATTEMPTS) continue;
        if (err instanceof VoucherChanged) throw new FailedPrecondition('the voucher changed while the hold was being placed; try again');
        throw err;
      }
    }
  }

  /**
   * Ends a hold by moving `amount` (default all of it) from the wallet into the merchant's escrow;
   * the rest of the reservation is released. A voucher hold's discount is the merchant's cost:
   * a second transfer (kind 'voucher') moves it from merchant:<id>:vouchers to external:vouchers,
   * all of it even on a partial capture (the voucher was spent on this purchase).
   */
  async capture(q: Queryable, input: { holdId: string; amount?: Amount }): Promise<{ hold: HoldRow; transfer: TransferView }> {
    const hold = await this.lockedHold(q, input.holdId);
    if (input.amount) requireSameCurrency(hold, input.amount);
    const captured = planCapture(holdMoney(hold), input.amount?.minor);
    const wallet = walletOf(hold.accountId);
    // Both transfers' accounts locked up front in the one global order.
    if (hold.discount > 0n) await this.lockAccounts(q, hold.currency, [wallet, escrowOf(hold.merchantId), vouchersOf(hold.merchantId), VOUCHERS]);
    const transfer = await this.store.post(q, {
      kind: 'capture',
      reference: hold.paymentId,
      holdId: hold.holdId,
      legs: move(wallet, escrowOf(hold.merchantId), hold.currency, captured),
      held: { account: wallet, currency: hold.currency, amount: -hold.amount },
    });
    if (hold.discount > 0n) {
      await this.store.post(q, { kind: 'voucher', reference: hold.paymentId, holdId: hold.holdId, legs: move(vouchersOf(hold.merchantId), VOUCHERS, hold.currency, hold.discount) });
    }
    const after = await this.store.markCaptured(q, hold.holdId, captured, this.options.protectionWindowSeconds);
    await this.emit(q, 'payment.hold.captured', holdEvent(after, captured, transfer.transferId, true));
    await this.emit(q, 'escrow.funded', holdEvent(after, captured, transfer.transferId));
    return { hold: after, transfer };
  }

  /** The hold placed for a payment; NOT_FOUND when none was. */
  async holdIdOfPayment(q: Queryable, paymentId: string): Promise<string> {
    const hold = await this.store.holdByPayment(q, paymentId);
    if (!hold) throw new NotFound(`no hold was placed for payment ${paymentId}`);
    return hold.holdId;
  }

  /** Releases a pending hold; `reason` goes on payment.hold.voided (what the buyer is told depends on it). */
  async void(q: Queryable, holdId: string, reason: VoidReasonName = 'MERCHANT_CANCELLED'): Promise<HoldRow> {
    const hold = await this.lockedHold(q, holdId);
    assertVoidable(holdMoney(hold));
    return this.end(q, hold, 'VOIDED', reason);
  }

  /** The sweeper's step for one hold; false when it is not (or no longer) due, or another transaction has it. */
  async expire(q: Queryable, holdId: string): Promise<boolean> {
    const hold = await this.store.hold(q, holdId, 'skipLocked');
    if (!hold || hold.status !== 'PENDING' || !hold.lapsed) return false;
    await this.end(q, hold, 'EXPIRED');
    return true;
  }

  /** Buyer confirmed delivery: the escrow goes to the merchant's payable. */
  async confirmDelivery(q: Queryable, holdId: string): Promise<TransferView> {
    const hold = await this.lockedHold(q, holdId);
    return this.release(q, hold, planRelease(holdMoney(hold)), `delivery:${hold.paymentId}`);
  }

  /** The sweeper's step for escrow whose protection window has passed; false when not due. */
  async autoRelease(q: Queryable, holdId: string): Promise<boolean> {
    const hold = await this.store.hold(q, holdId, 'skipLocked');
    if (!hold || hold.escrowStatus !== 'HELD' || !hold.escrowDue) return false;
    await this.release(q, hold, planRelease(holdMoney(hold)), `protection-window:${hold.paymentId}`);
    return true;
  }

  async refund(q: Queryable, input: { holdId: string; amount: Amount }): Promise<TransferView> {
    const hold = await this.lockedHold(q, input.holdId);
    requireSameCurrency(hold, input.amount);
    const change = planRefund(holdMoney(hold), input.amount.minor);
    return this.moveBack(q, hold, change, `refund:${hold.paymentId}`);
  }

  async openDispute(q: Queryable, input: { holdId: string; reason: string }): Promise<DisputeRow> {
    const hold = await this.lockedHold(q, input.holdId);
    assertDisputable(holdMoney(hold));
    const dispute = await this.store.insertDispute(q, hold.holdId, input.reason);
    const after = await this.store.setEscrow(q, hold.holdId, { ...hold, escrowStatus: 'DISPUTED' });
    await this.emit(q, 'escrow.frozen', holdEvent(after, after.escrow));
    return dispute;
  }

  async resolveDispute(q: Queryable, input: { disputeId: string; outcome: 'REFUND_BUYER' | 'RELEASE_TO_MERCHANT' }): Promise<TransferView> {
    const found = await this.store.dispute(q, input.disputeId);
    if (!found) throw new NotFound(`no dispute ${input.disputeId}`);
    // Hold first, then the dispute: the same order OpenDispute uses.
    const hold = await this.lockedHold(q, found.holdId);
    const dispute = (await this.store.dispute(q, input.disputeId, true))!;
    if (dispute.status !== 'OPEN') throw new FailedPrecondition(`dispute was already resolved (${dispute.outcome})`);
    const refund = input.outcome === 'REFUND_BUYER';
    const change = refund ? planDisputeRefund(holdMoney(hold)) : planRelease(holdMoney(hold), true);
    const reference = `dispute:${dispute.disputeId}`;
    const transfer = refund ? await this.moveBack(q, hold, change, reference) : await this.release(q, hold, change, reference);
    await this.store.resolveDispute(q, dispute.disputeId, input.outcome, transfer.transferId);
    // Besides the ledger event (payment.refunded / escrow.released, which look like any other),
    // say that a dispute was decided and how: risk labels the payment from it. Same transaction,
    // and an id per dispute, so it is published once however often the call is retried.
    const value: DisputeResolved = {
      disputeId: dispute.disputeId,
      holdId: hold.holdId,
      paymentId: hold.paymentId,
      accountId: hold.accountId,
      merchantId: hold.merchantId,
      amount: toMoney(change.fromEscrow + change.fromPayable, hold.currency),
      outcome: input.outcome,
      reason: dispute.reason,
      transferId: transfer.transferId,
      merchantName: hold.merchantName,
      deviceId: hold.deviceId,
    };
    await enqueueEvent(q, newEvent(DISPUTE_RESOLVED, SOURCE, { $case: 'dispute', value }, disputeResolvedEventId(dispute.disputeId)));
    return transfer;
  }

  async balance(q: Queryable, account: string, currency: string): Promise<Balance> {
    const row = await this.store.account(q, account, currency);
    if (!row) return { posted: 0n, held: 0n, available: 0n };
    return { posted: row.posted, held: row.held, available: row.posted - row.held };
  }

  async transfer(q: Queryable, transferId: string): Promise<TransferView> {
    const transfer = await this.store.transfer(q, transferId);
    if (!transfer) throw new NotFound(`no transfer ${transferId}`);
    return transfer;
  }

  /**
   * Pays each merchant the net of its payable transfers committed before the end of
   * `businessDate` (UTC; now, for today) and not paid out yet: one payout per merchant, currency
   * and date. A net that refunds made zero or negative is carried to the next payout. Runs are
   * serialised so two never pay the same transfer.
   */
  async runPayouts(q: Queryable, businessDate: string): Promise<{ payouts: PayoutRow[]; report: string }> {
    await q.query("SELECT pg_advisory_xact_lock(hashtext('settlement.payouts'))");
    const { cutoff, future } = await this.store.payoutCutoff(q, businessDate);
    if (future) throw new FailedPrecondition(`business_date ${businessDate} has not begun (UTC)`);
    const candidates = await this.store.payoutCandidates(q, businessDate, cutoff);
    // Lock in the global account order: external:payouts sorts before merchant:*.
    for (const currency of new Set(candidates.map((c) => c.currency))) await this.store.lockOrCreate(q, PAYOUTS, currency);
    for (const c of candidates) await this.store.lockOrCreate(q, c.account, c.currency);
    let carried = 0;
    for (const c of candidates) {
      const { net, transfers } = await this.store.unpaidNet(q, c.account, c.currency, cutoff);
      if (net <= 0n) {
        carried++;
        continue;
      }
      const transfer = await this.store.post(q, { kind: 'payout', reference: `payout:${businessDate}:${c.merchantId}`, legs: move(payableOf(c.merchantId), PAYOUTS, c.currency, net) });
      await this.store.insertPayout(q, { merchantId: c.merchantId, currency: c.currency, businessDate, amount: net, transferId: transfer.transferId, transfers, account: c.account, cutoff });
    }
    const payouts = await this.store.payouts(q, businessDate);
    return { payouts, report: payoutReport(businessDate, cutoff, payouts, carried) };
  }

  /** Consumes device.lost: from now on PlaceHold for this band answers ACCOUNT_FROZEN. Idempotent per event. */
  async freezeDevice(q: Queryable, input: { eventId: string; deviceId: string; accountId: string }): Promise<boolean> {
    if (!(await this.store.markProcessed(q, input.eventId))) return false;
    await this.store.freezeDevice(q, input.deviceId, input.accountId, input.eventId);
    return true;
  }

  private async lockedHold(q: Queryable, holdId: string): Promise<HoldRow> {
    const hold = await this.store.hold(q, holdId, 'update');
    if (!hold) throw new NotFound(`no hold ${holdId}`);
    return hold;
  }

  private async end(q: Queryable, hold: HoldRow, status: 'VOIDED' | 'EXPIRED', voidReason = ''): Promise<HoldRow> {
    const after = await this.store.endHold(q, hold.holdId, status);
    // Nothing was bought: the buyer keeps the voucher. Before the wallet (lock order).
    if (hold.voucherId) await this.vouchers.release(q, hold);
    await this.store.changeHeld(q, walletOf(hold.accountId), hold.currency, -hold.amount);
    await this.emit(q, status === 'VOIDED' ? 'payment.hold.voided' : 'payment.hold.expired', { ...holdEvent(after, hold.amount), voidReason });
    return after;
  }

  private async lockAccounts(q: Queryable, currency: string, accounts: string[]): Promise<void> {
    for (const a of accounts.map((account) => ({ account, currency })).sort(compareAccounts)) await this.store.lockOrCreate(q, a.account, a.currency);
  }

  private async release(q: Queryable, hold: HoldRow, change: EscrowChange, reference: string): Promise<TransferView> {
    const transfer = await this.store.post(q, { kind: 'release', reference, holdId: hold.holdId, legs: move(escrowOf(hold.merchantId), payableOf(hold.merchantId), hold.currency, change.fromEscrow) });
    const after = await this.store.setEscrow(q, hold.holdId, change);
    await this.emit(q, 'escrow.released', holdEvent(after, change.fromEscrow, transfer.transferId));
    return transfer;
  }

  /** Money back to the buyer's wallet, from escrow or (after release) from the merchant's payable. */
  private async moveBack(q: Queryable, hold: HoldRow, change: EscrowChange, reference: string): Promise<TransferView> {
    const wallet = walletOf(hold.accountId);
    const legs = [
      ...(change.fromEscrow > 0n ? move(escrowOf(hold.merchantId), wallet, hold.currency, change.fromEscrow) : []),
      ...(change.fromPayable > 0n ? move(payableOf(hold.merchantId), wallet, hold.currency, change.fromPayable) : []),
    ];
    const transfer = await this.store.post(q, { kind: 'refund', reference, holdId: hold.holdId, legs });
    const after = await this.store.setEscrow(q, hold.holdId, change);
    await this.emit(q, 'payment.refunded', holdEvent(after, change.fromEscrow + change.fromPayable, transfer.transferId));
    return transfer;
  }

  private async emit(q: Queryable, type: string, value: LedgerMoved): Promise<void> {
    await enqueueEvent(q, newEvent(type, SOURCE, { $case: 'ledger', value }));
  }
}

/** A hold's ledger event; `withDiscount` (placed, captured) carries a voucher's discount. */
/** wristpay.settlement.v1.VoidReason without its prefix, as payment.hold.voided carries it. */
export type VoidReasonName = 'MERCHANT_CANCELLED' | 'PAYMENT_NOT_COMPLETED';

function holdEvent(hold: HoldRow, amount: bigint, transferId = '', withDiscount = false): LedgerMoved {
  return {
    transferId,
    holdId: hold.holdId,
    paymentId: hold.paymentId,
    accountId: hold.accountId,
    merchantId: hold.merchantId,
    amount: toMoney(amount, hold.currency),
    merchantName: hold.merchantName,
    deviceId: hold.deviceId,
    discount: withDiscount && hold.discount > 0n ? toMoney(hold.discount, hold.currency) : undefined,
    voidReason: '',
  };
}

function requireSameCurrency(hold: HoldRow, amount: Amount): void {
  if (amount.currency !== hold.currency) throw new InvalidArgument(`amount.currency must be the hold's currency (${hold.currency})`);
}
