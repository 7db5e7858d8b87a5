import { jetstreamManager } from '@nats-io/jetstream';
import { requireServers, TEST_NATS_URL, uniqueName, TEST_STREAM_LIMITS } from '../test/support/servers';
import { testLogger } from '../test/support/services';
import type { Event } from '../gen/wristpay/events/v1/events';
import { eventually } from '../test/support/eventually';
import { newEvent } from './events';
import { EventBus, subjectMatches } from './nats';

describe('subjectMatches', () => {
  it.each([
    ['device.lost', 'device.lost', true],
    ['device.lost', 'device.lost.x', false],
    ['device.*', 'device.lost', true],
    ['device.*', 'device.session.ended', false],
    ['device.>', 'device.session.ended', true],
    ['device.>', 'device', false],
    ['t1.payment.*.placed', 't1.payment.hold.placed', true],
    ['t1.payment.*.placed', 't2.payment.hold.placed', false],
  ])('%s ~ %s = %s', (pattern, subject, expected) => {
    expect(subjectMatches(pattern, subject)).toBe(expected);
  });
});

describe('EventBus.history against real NATS', () => {
  const prefix = uniqueName('hist');
  let bus: EventBus;
  beforeAll(async () => {
    await requireServers('NATS');
    bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'test', log: testLogger('test'), limits: TEST_STREAM_LIMITS });
  });
  afterAll(() => bus?.close());

  const scored = (id: string) => newEvent('risk.scored', 'test', { $case: 'risk', value: { paymentId: id, decision: 'APPROVE', score: 0, reasons: [], rulesetVersion: '', modelVersion: '', accountId: 'a', deviceId: 'd', payment: undefined } });
  const read = async (options: Parameters<EventBus['history']>[2] = {}) => {
    const out: string[] = [];
    for await (const { event } of bus.history('risk', 'risk.scored', options)) out.push(event.payload?.$case === 'risk' ? event.payload.value.paymentId : '?');
    return out;
  };

  it('reads an empty stream as nothing', async () => {
    expect(await read()).toEqual([]);
  });

  it('reads one type in stream order across batches, skips what is not an Event, and deletes its consumer', async () => {
    for (const id of ['p1', 'p2', 'p3']) await bus.publish(scored(id));
    await bus.publish(newEvent('risk.alert', 'test', scored('alert').payload!));
    await bus.js.publish(bus.subject('risk.scored'), new Uint8Array([0xff, 0xff, 0xff]));
    const cut = new Date();
    await new Promise((r) => setTimeout(r, 20));
    for (const id of ['p4', 'p5']) await bus.publish(scored(id));
    expect(await read({ batch: 2 })).toEqual(['p1', 'p2', 'p3', 'p4', 'p5']);
    expect(await read({ since: cut })).toEqual(['p4', 'p5']);
    const jsm = await jetstreamManager(bus.nc);
    expect(await jsm.consumers.list(bus.streamName('risk')).next()).toEqual([]);
  });
});

describe('EventBus.consumeEach against real NATS', () => {
  const prefix = uniqueName('each');
  let bus: EventBus;
  beforeAll(async () => {
    await requireServers('NATS');
    bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'test', log: testLogger('test'), limits: TEST_STREAM_LIMITS });
  });
  afterAll(() => bus?.close());

  const ledger = (type: string, id: string) => newEvent(type, 'test', { $case: 'ledger', value: { paymentId: id } as never });
  const ids = (events: Event[]) => events.map((e) => `${e.type} ${e.payload?.$case === 'ledger' ? e.payload.value.paymentId : '?'}`);

  it('gets only its types, one durable each, and takes over a combined durable from its acknowledged floor, deleting it', async () => {
    const jsm = await jetstreamManager(bus.nc);
    const stream = bus.streamName('payment');
    // The old way: one durable on the whole area, which handled (and acked) e1 and e2 before it stopped.
    const seenByOld: Event[] = [];
    const old = await bus.consume({ area: 'payment', durable: 'holds', types: ['payment.hold.expired', 'payment.hold.voided'], handler: async (e) => void seenByOld.push(e) });
    await bus.publish(ledger('payment.hold.expired', 'e1'));
    await bus.publish(ledger('payment.hold.placed', 'p1'));
    await bus.publish(ledger('payment.hold.voided', 'e2'));
    await eventually(async () => (await jsm.consumers.info(stream, 'holds')).ack_floor.stream_seq === 3, 10_000, 'the old durable acked the first three');
    await old.stop();
    // Published while no consumer ran: the new ones must not miss these.
    await bus.publish(ledger('payment.hold.voided', 'e3'));
    await bus.publish(ledger('payment.authorized', 'a1'));

    const seen: Event[] = [];
    const each = await bus.consumeEach({ area: 'payment', durable: 'holds', types: ['payment.hold.expired', 'payment.hold.voided'], handler: async (e) => void seen.push(e) });
    try {
      await bus.publish(ledger('payment.hold.expired', 'e4'));
      await bus.publish(ledger('payment.hold.placed', 'p2'));
      await eventually(() => seen.length >= 2, 10_000, 'the two hold ends after the floor');
      await new Promise((r) => setTimeout(r, 300));
      expect(ids(seenByOld)).toEqual(['payment.hold.expired e1', 'payment.hold.voided e2']);
      expect(ids(seen).sort()).toEqual(['payment.hold.expired e4', 'payment.hold.voided e3']);
      const names: string[] = [];
      for await (const c of jsm.consumers.list(stream)) names.push(c.name);
      expect(names.sort()).toEqual(['holds-payment-hold-expired', 'holds-payment-hold-voided']);
      // Nothing of another type was delivered to them.
      for (const name of names) expect((await jsm.consumers.info(stream, name)).delivered.consumer_seq).toBe(1);
    } finally {
      await each.stop();
    }
  });

  it('refuses wildcards', async () => {
    await expect(bus.consumeEach({ area: 'payment', durable: 'wild', types: ['payment.>'], handler: async () => undefined })).rejects.toThrow('exact types');
  });
});
