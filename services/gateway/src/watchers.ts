/**
 * Wakes WatchPayment streams in this process when a payment they follow changes here. A change
 * made by another replica is seen at the stream's next poll (services/gateway/src/server.ts).
 */
export class PaymentWatchers {
  private readonly waiting = new Map<string, Set<() => void>>();

  /** Resolves at the next notify(paymentId), after `ms`, or when `signal` aborts, whichever comes first. */
  next(paymentId: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', wake);
        const set = this.waiting.get(paymentId);
        set?.delete(wake);
        if (set?.size === 0) this.waiting.delete(paymentId);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      signal.addEventListener('abort', wake, { once: true });
      let set = this.waiting.get(paymentId);
      if (!set) this.waiting.set(paymentId, (set = new Set()));
      set.add(wake);
    });
  }

  notify(paymentId: string): void {
    for (const wake of [...(this.waiting.get(paymentId) ?? [])]) wake();
  }

  /** How many streams wait on some payment (a test checks a cancelled stream leaves none). */
  get size(): number {
    let n = 0;
    for (const set of this.waiting.values()) n += set.size;
    return n;
  }
}
