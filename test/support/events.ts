import { jetstream, jetstreamManager, DeliverPolicy } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { Event } from '../../gen/wristpay/events/v1/events';
import { decodeEvent, STREAM_AREAS } from '../../platform/events';
import { natsServers } from '../../platform/nats';
import { TEST_NATS_URL } from './servers';

/**
 * Watches every WristPay stream under one subject prefix, so a test can assert which events
 * were published, and how many times. Reads with ordered consumers: it never acks or disturbs
 * the services' own durable consumers.
 */
export async function watchEvents(prefix: string, url = TEST_NATS_URL) {
  const nc = await connect({ servers: natsServers(url) });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const seen: Array<{ subject: string; event: Event; msgId: string | undefined; headers: Record<string, string> }> = [];
  const stops: Array<() => Promise<void>> = [];
  for (const area of STREAM_AREAS) {
    const stream = `${prefix.toUpperCase()}_${area.toUpperCase()}`;
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.${area}.>`], duplicate_window: 120 * 1e9 }).catch(() => undefined);
    const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume();
    const done = (async () => {
      for await (const m of messages) {
        const headers: Record<string, string> = {};
        for (const k of m.headers?.keys() ?? []) headers[k] = m.headers!.get(k);
        seen.push({ subject: m.subject.slice(prefix.length + 1), event: decodeEvent(m.data), msgId: m.headers?.get('Nats-Msg-Id') || undefined, headers });
      }
    })();
    stops.push(async () => {
      await messages.close();
      await done;
    });
  }
  return {
    seen,
    ofType: (type: string) => seen.filter((s) => s.subject === type),
    /** Resolves when `predicate` holds for the events seen so far; rejects after `timeoutMs`. */
    async waitFor(predicate: (all: typeof seen) => boolean, timeoutMs = 5_000, what = 'expected events'): Promise<void> {
      const until = Date.now() + timeoutMs;
      while (!predicate(seen)) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}; saw: ${seen.map((s) => s.subject).join(', ') || 'nothing'}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async close() {
      for (const stop of stops) await stop();
      for (const area of STREAM_AREAS) await jsm.streams.delete(`${prefix.toUpperCase()}_${area.toUpperCase()}`).catch(() => undefined);
      await nc.close();
    },
  };
}
