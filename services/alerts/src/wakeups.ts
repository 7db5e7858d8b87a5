import { randomUUID } from 'node:crypto';
import type { Subscription } from '@nats-io/nats-core';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';

/** The core NATS subject (under NATS_SUBJECT_PREFIX) replicas tell each other about new alerts on; in no JetStream stream. */
export const STORED_SUBJECT = 'alerts.stored';

/** One open stream's wake-up: `wait` returns early when its account got an alert since the last wait. */
export interface FeedWatch {
  /** Resolves on a wake-up for the account (also one that came before this call), after `ms`, or when `signal` aborts. */
  wait(ms: number, signal: AbortSignal): Promise<void>;
  close(): void;
}

/**
 * Wakes open StreamAlerts calls when their account gets a new alert: at once when this replica's
 * consumer stored it, and through a core NATS message (fire and forget) when another replica did.
 * A wake-up may be lost (a NATS message dropped, a replica reconnecting); streams poll as well,
 * so a lost one only delays an alert by the poll interval, and a wake-up carries no data: the
 * stream always reads the database.
 */
export class FeedWakeups {
  private readonly watchers = new Map<string, Set<() => void>>();
  private readonly replica = randomUUID();
  private readonly subject: string;
  private subscription: Subscription | undefined;

  constructor(
    private readonly bus: EventBus,
    private readonly log: Logger,
  ) {
    this.subject = bus.subject(STORED_SUBJECT);
  }

  start(): this {
    this.subscription = this.bus.nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const note = msg.json<{ accountId?: unknown; replica?: unknown }>();
          if (note.replica !== this.replica && typeof note.accountId === 'string') this.wake(note.accountId);
        } catch {
          this.log.warn({ subject: msg.subject }, 'unreadable alert wake-up ignored');
        }
      },
    });
    return this;
  }

  /** Called after an alert has committed: wakes this replica's streams of the account and tells the others. */
  stored(accountId: string, sequence: bigint): void {
    this.wake(accountId);
    try {
      this.bus.nc.publish(this.subject, JSON.stringify({ accountId, sequence: sequence.toString(), replica: this.replica }));
    } catch (err) {
      // The other replicas' streams find the alert at their next poll.
      this.log.warn({ err: (err as Error).message }, 'alert wake-up not published');
    }
  }

  watch(accountId: string): FeedWatch {
    let pending = false;
    let release: (() => void) | undefined;
    const notify = () => {
      pending = true;
      release?.();
    };
    let set = this.watchers.get(accountId);
    if (!set) this.watchers.set(accountId, (set = new Set()));
    set.add(notify);
    return {
      wait: (ms, signal) =>
        new Promise<void>((resolve) => {
          if (pending || signal.aborted) {
            pending = false;
            return resolve();
          }
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            release = undefined;
            pending = false;
            resolve();
          };
          const timer = setTimeout(done, ms);
          release = done;
          signal.addEventListener('abort', done, { once: true });
        }),
      close: () => {
        set.delete(notify);
        if (set.size === 0 && this.watchers.get(accountId) === set) this.watchers.delete(accountId);
        release?.();
      },
    };
  }

  /** Open watches (streams), for logs and tests. */
  get watching(): number {
    let n = 0;
    for (const set of this.watchers.values()) n += set.size;
    return n;
  }

  private wake(accountId: string): void {
    for (const notify of this.watchers.get(accountId) ?? []) notify();
  }

  async stop(): Promise<void> {
    this.subscription?.unsubscribe();
  }
}
