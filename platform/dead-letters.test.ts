import { AckPolicy, DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { requireServers, TEST_NATS_URL, TEST_STREAM_LIMITS, uniqueName } from '../test/support/servers';
import { eventually } from '../test/support/eventually';
import { testLogger } from '../test/support/services';
import { DeviceChanged } from '../gen/wristpay/events/v1/events';
import { listDeadLetters, replayDeadLetter } from './dead-letter-admin';
import { backoffFor, DEFAULT_LIMITS, errorClass, readDeadLetter } from './dead-letters';
import { encodeEvent, STREAM_AREAS, newEvent } from './events';
import { EventBus } from './nats';

describe('backoffFor and errorClass', () => {
  it('walks the backoff list and repeats its last delay', () => {
    const limits = { backoffMs: [10, 20, 30] };
    expect([1, 2, 3, 4, 9].map((n) => backoffFor(limits, n))).toEqual([10, 20, 30, 30, 30]);
  });
  it('names the error class and code, never the message', () => {
    const err = Object.assign(new TypeError('card 4111111111111111 rejected'), { code: '23505' });
    expect(errorClass(err)).toBe('TypeError:23505');
    expect(errorClass(new Error('secret'))).toBe('Error');
  });
});

describe('stream limits and dead letters against real NATS', () => {
  beforeAll(() => requireServers('NATS'));
  const buses: EventBus[] = [];
  afterAll(async () => {
    for (const bus of buses) {
      const jsm = await jetstreamManager(bus.nc);
      for (const area of [...STREAM_AREAS, 'dead_letters'] as const) await jsm.streams.delete(bus.streamName(area)).catch(() => undefined);
      await bus.close();
    }
  });
  const open = async (prefix: string, limits: Parameters<typeof EventBus.connect>[0]['limits'] = {}) => {
    const bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'test', log: testLogger('test'), limits: { ...TEST_STREAM_LIMITS, ...limits } });
    buses.push(bus);
    return bus;
  };
  const lost = (deviceId: string) => newEvent('device.lost', 'test', { $case: 'device', value: DeviceChanged.fromPartial({ deviceId, accountId: 'acct-1' }) });

  /** The dead letters under `bus`'s prefix, oldest first, with their headers read back. */
  const deadLetters = async (bus: EventBus) => {
    const jsm = await jetstreamManager(bus.nc);
    const name = bus.streamName('dead_letters');
    const { state } = await jsm.streams.info(name);
    const out = [];
    for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(name, { seq }).catch(() => null);
      if (m) out.push({ subject: m.subject, data: m.data, info: readDeadLetter(m.header)!, eventType: m.header.get('Wp-Event-Type') });
    }
    return out;
  };

  it('creates every stream with max age, max bytes and discard new, and brings an older stream to them', async () => {
    const prefix = uniqueName('lim');
    // A stream made before this change, without limits.
    const raw = await open(`${prefix}x`);
    const jsm = await jetstreamManager(raw.nc);
    await jsm.streams.delete(raw.streamName('payment'));
    await jsm.streams.add({ name: `${prefix.toUpperCase()}_PAYMENT`, subjects: [`${prefix}.payment.>`] });
    const bus = await open(prefix, { maxAgeMs: 3_600_000, maxBytes: 10_000_000, deadLetterMaxAgeMs: 7_200_000 });
    for (const area of STREAM_AREAS) {
      const { config } = await jsm.streams.info(bus.streamName(area));
      expect({ area, maxAge: config.max_age, maxBytes: config.max_bytes, discard: config.discard }).toEqual({ area, maxAge: 3_600_000 * 1e6, maxBytes: 10_000_000, discard: DiscardPolicy.New });
    }
    const dead = (await jsm.streams.info(bus.streamName('dead_letters'))).config;
    expect([dead.subjects, dead.max_age, dead.discard]).toEqual([[`${prefix}.dlq.>`], 7_200_000 * 1e6, DiscardPolicy.New]);
  });

  it('parks a message that fails N times on the dead-letter stream and goes on with the next', async () => {
    const prefix = uniqueName('dlq');
    const bus = await open(prefix, { maxDeliver: 3, backoffMs: [20, 40] });
    const attempts = new Map<string, number>();
    const handled: string[] = [];
    let cured = false;
    const consumer = await bus.consume({
      area: 'device',
      durable: 'poison-test',
      types: ['device.lost'],
      handler: async (event) => {
        const id = event.payload?.$case === 'device' ? event.payload.value.deviceId : '?';
        attempts.set(id, (attempts.get(id) ?? 0) + 1);
        if (id === 'poison' && !cured) throw Object.assign(new RangeError('boom'), { code: 'XX000' });
        handled.push(id);
      },
    });
    try {
      const poison = lost('poison');
      const first = await bus.publish(poison);
      await bus.publish(lost('next-1'));
      // Not an Event at all: parked at once, never handed to the handler.
      const garbage = await bus.js.publish(bus.subject('device.lost'), new Uint8Array([0xff, 0xff, 0xff]));
      await bus.publish(lost('next-2'));
      await eventually(async () => handled.length === 2 && (await deadLetters(bus)).length === 2, 10_000, 'two handled, two parked');
      expect(handled).toEqual(['next-1', 'next-2']);
      expect(attempts.get('poison')).toBe(3);
      const parked = await deadLetters(bus);
      const stream = bus.streamName('device');
      expect(parked.map((p) => [p.subject, p.info.stream, p.info.consumer, p.info.subject, p.info.seq, p.info.error])).toEqual(
        expect.arrayContaining([
          [`${prefix}.dlq.${stream}.poison-test`, stream, 'poison-test', `${prefix}.device.lost`, first.seq, 'RangeError:XX000'],
          [`${prefix}.dlq.${stream}.poison-test`, stream, 'poison-test', `${prefix}.device.lost`, garbage.seq, 'undecodable'],
        ]),
      );
      const poisonLetter = parked.find((p) => p.info.seq === first.seq)!;
      expect(poisonLetter.info.deliveries).toBe(3);
      expect(poisonLetter.eventType).toBe('device.lost'); // the original headers travel with it
      expect(Buffer.from(poisonLetter.data).equals(Buffer.from(encodeEvent(poison)))).toBe(true);
      // Terminated on the original: nothing pending or waiting for an ack, and no fourth try.
      const jsm = await jetstreamManager(bus.nc);
      await eventually(async () => {
        const info = await jsm.consumers.info(stream, 'poison-test');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, 5_000, 'nothing pending on the original consumer');
      expect((await jsm.consumers.info(stream, 'poison-test')).config.max_deliver).toBe(3);
      await new Promise((r) => setTimeout(r, 200));
      expect(attempts.get('poison')).toBe(3);

      // The operator's view, then a replay once the cause is fixed: the consumer handles it.
      // In the order they were parked: the undecodable one at its first delivery, the poison at its third.
      const listed = await listDeadLetters(bus);
      expect(listed.map((d) => [d.originalSeq, d.consumer, d.error, d.eventType ?? null])).toEqual([
        [garbage.seq, 'poison-test', 'undecodable', null],
        [first.seq, 'poison-test', 'RangeError:XX000', 'device.lost'],
      ]);
      cured = true;
      const replay = await replayDeadLetter(bus, listed[1]!.seq);
      expect(replay.subject).toBe(`${prefix}.device.lost`);
      await eventually(() => handled.includes('poison'), 5_000, 'the replayed message handled');
      expect((await listDeadLetters(bus)).map((d) => d.originalSeq)).toEqual([garbage.seq]);
      await expect(replayDeadLetter(bus, listed[1]!.seq)).rejects.toThrow(/no dead letter with sequence/);
    } finally {
      await consumer.stop();
    }
  });

  it('parks a message whose last delivery is never answered (the advisory backstop)', async () => {
    const prefix = uniqueName('dlqa');
    const bus = await open(prefix, { maxDeliver: 2, ackWaitMs: 300, backoffMs: [20] });
    let release!: () => void;
    const hung = new Promise<void>((r) => (release = r));
    const consumer = await bus.consume({ area: 'device', durable: 'hang-test', types: ['device.lost'], handler: () => hung });
    try {
      const { seq } = await bus.publish(lost('hangs'));
      await eventually(async () => (await deadLetters(bus)).length > 0, 10_000, 'the unanswered message parked');
      expect((await deadLetters(bus)).map((p) => [p.info.seq, p.info.deliveries, p.info.error])).toEqual([[seq, 2, 'unacknowledged']]);
    } finally {
      release();
      await consumer.stop();
    }
  });

  it('brings a durable made with unlimited deliveries to max_deliver N', async () => {
    const prefix = uniqueName('dlqu');
    const bus = await open(prefix, { maxDeliver: 4 });
    const jsm = await jetstreamManager(bus.nc);
    const stream = bus.streamName('token');
    await jsm.consumers.add(stream, { durable_name: 'old', ack_policy: AckPolicy.Explicit, filter_subject: bus.subject('token.>'), max_deliver: -1 });
    const consumer = await bus.consume({ area: 'token', durable: 'old', types: ['token.>'], handler: async () => undefined });
    await consumer.stop();
    expect((await jsm.consumers.info(stream, 'old')).config.max_deliver).toBe(4);
  });

  it('defaults: ten deliveries spread over about 48 minutes', () => {
    let total = 0;
    for (let n = 1; n < DEFAULT_LIMITS.maxDeliver; n++) total += backoffFor(DEFAULT_LIMITS, n);
    expect(DEFAULT_LIMITS.maxDeliver).toBe(10);
    expect(Math.round(total / 60_000)).toBe(48);
  });
});
