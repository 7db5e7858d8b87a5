import { jetstreamManager } from '@nats-io/jetstream';
import { requireServers, TEST_NATS_URL, uniqueName, TEST_STREAM_LIMITS } from '../test/support/servers';
import { testLogger } from '../test/support/services';
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
