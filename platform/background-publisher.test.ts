import { eventually } from '../test/support/eventually';
import { requireServers, TEST_NATS_URL, uniqueName, TEST_STREAM_LIMITS } from '../test/support/servers';
import { testLogger } from '../test/support/services';
import { tcpProxy, type TcpProxy } from '../test/support/tcp-proxy';
import { BackgroundPublisher } from './background-publisher';
import { newEvent } from './events';
import { EventBus } from './nats';

// Events without an outbox (risk decisions, session hints) must survive a NATS outage: queued
// while it is away, published once it answers, each exactly once on the stream.
describe('BackgroundPublisher against real NATS behind a cut connection', () => {
  const prefix = uniqueName('bgpub');
  let proxy: TcpProxy;
  let bus: EventBus;
  let reader: EventBus;

  beforeAll(async () => {
    await requireServers('NATS');
    proxy = await tcpProxy(TEST_NATS_URL);
    bus = await EventBus.connect({ url: `nats://127.0.0.1:${proxy.port}`, prefix, source: 'test', log: testLogger('test'), limits: TEST_STREAM_LIMITS });
    reader = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'reader', log: testLogger('test'), limits: TEST_STREAM_LIMITS });
  });
  afterAll(async () => {
    await bus?.close();
    await reader?.close();
    await proxy?.close();
  });

  const scored = (id: string) =>
    newEvent('risk.scored', 'test', { $case: 'risk', value: { paymentId: id, decision: 'APPROVE', score: 0, reasons: [], rulesetVersion: '', modelVersion: '', accountId: 'a', deviceId: 'd', payment: undefined } }, `scored.${prefix}.${id}`);
  const onStream = async () => {
    const ids: string[] = [];
    for await (const { event } of reader.history('risk', 'risk.scored')) ids.push(event.payload?.$case === 'risk' ? event.payload.value.paymentId : '?');
    return ids;
  };

  it('keeps events while NATS is away and publishes each exactly once when it is back', async () => {
    const publisher = new BackgroundPublisher(bus, testLogger('test'), { retryMinMs: 50, retryMaxMs: 300, batch: 8 });
    publisher.publish(scored('before'));
    await eventually(() => publisher.size === 0, 10_000, 'the first event published');

    await proxy.cut();
    const during = Array.from({ length: 20 }, (_, i) => `during-${String(i).padStart(2, '0')}`);
    for (const id of during) publisher.publish(scored(id));
    // A negative over time (so a fixed wait): nothing gets through a cut connection.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(publisher.size).toBe(20);

    await proxy.restore();
    await eventually(() => publisher.size === 0, 20_000, 'the queue drained after NATS came back');
    // Exactly once each (a batch sent as the connection came back may be retried in part, so
    // the stream's order within a batch is not asserted; the duplicate window drops re-sends).
    const ids = await onStream();
    expect(ids[0]).toBe('before');
    expect(ids.slice(1).sort()).toEqual(during);
    await publisher.drain(1_000);
  }, 40_000);

  it('bounds its memory: past maxQueued the newest events are dropped, not the process', async () => {
    await proxy.cut();
    const publisher = new BackgroundPublisher(bus, testLogger('test'), { maxQueued: 5, retryMinMs: 50, retryMaxMs: 100 });
    for (let i = 0; i < 12; i++) publisher.publish(scored(`bounded-${i}`));
    expect(publisher.size).toBe(5);
    await proxy.restore();
    await eventually(() => publisher.size === 0, 20_000, 'the bounded queue drained');
    expect((await onStream()).filter((id) => id.startsWith('bounded-')).sort()).toEqual(['bounded-0', 'bounded-1', 'bounded-2', 'bounded-3', 'bounded-4']);
  }, 40_000);
});
