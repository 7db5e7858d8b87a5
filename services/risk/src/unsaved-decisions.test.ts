import { createLogger } from '../../../platform/log';
import type { UnsavedDecision } from './domain/decision-backlog';
import { degradedFeatures } from './domain/features';
import { input } from './domain/fixtures';
import { UnsavedDecisions, type UnsavedDecisionsOptions } from './unsaved-decisions';

const decision = (degraded = true): UnsavedDecision => ({
  verdict: { decision: 'APPROVE', score: 0, reasons: [{ code: 'REDIS_UNAVAILABLE', description: 'x', points: 0 }], rulesetVersion: 'r', modelVersion: 'm', probability: 0 },
  features: degradedFeatures(input()),
  scoredAt: new Date(1_700_000_000_000),
  degraded,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(ok: () => boolean, what: string, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A decision store that is down until `up` is set; `writes` lists what reached it, in order. */
function fakeStore() {
  const fake = {
    up: false,
    hang: false,
    writes: [] as string[],
    async saveIfAbsent(paymentId: string): Promise<'stored' | 'kept'> {
      if (fake.hang) return new Promise(() => undefined);
      if (!fake.up) throw new Error('Stream isn\'t writeable');
      fake.writes.push(paymentId);
      return 'stored';
    },
  };
  return fake;
}

function setup(over: Partial<UnsavedDecisionsOptions> = {}) {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('risk', 'info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const store = fakeStore();
  const unsaved = new UnsavedDecisions(store, { max: 100, log, retryMinMs: 10, retryMaxMs: 40, logEveryMs: 60_000, ...over });
  return { unsaved, store, lines };
}

describe('UnsavedDecisions', () => {
  it('retries with backoff while Redis is down and writes everything, oldest first, once it answers', async () => {
    const { unsaved, store } = setup({ batch: 2 });
    for (const id of ['p1', 'p2', 'p3', 'p4', 'p5']) unsaved.keep(id, decision());
    expect(unsaved.size).toBe(5);
    await sleep(60);
    expect(store.writes).toEqual([]);
    expect(unsaved.find('p3')).toBeDefined();
    store.up = true;
    // No 'ready' nudge here: the timer's retry alone gets there (backoff capped at 40 ms).
    await until(() => unsaved.size === 0, 'the backlog to drain');
    expect(store.writes).toEqual(['p1', 'p2', 'p3', 'p4', 'p5']);
    expect(unsaved.find('p3')).toBeUndefined();
    await unsaved.close(100);
  });

  it('flushSoon writes at once, and a successful Score save supersedes its own entry', async () => {
    const { unsaved, store } = setup({ retryMinMs: 60_000, retryMaxMs: 60_000 });
    unsaved.keep('p1', decision());
    unsaved.keep('p2', decision());
    store.up = true;
    unsaved.stored('p2');
    await until(() => unsaved.size === 0, 'the flush after a successful save');
    expect(store.writes).toEqual(['p1']);
    unsaved.keep('p3', decision());
    unsaved.flushSoon();
    await until(() => unsaved.size === 0, 'the flush on ready');
    expect(store.writes).toEqual(['p1', 'p3']);
    await unsaved.close(100);
  });

  it('ensureStored writes the one waiting decision before a label, and throws while Redis is down', async () => {
    const { unsaved, store } = setup({ retryMinMs: 60_000, retryMaxMs: 60_000 });
    unsaved.keep('p1', decision());
    unsaved.keep('p2', decision());
    await expect(unsaved.ensureStored('p2')).rejects.toThrow(/writeable/);
    expect(unsaved.find('p2')).toBeDefined();
    store.up = true;
    await unsaved.ensureStored('p2');
    await unsaved.ensureStored('never-kept');
    expect(store.writes).toEqual(['p2']);
    expect(unsaved.find('p2')).toBeUndefined();
    expect(unsaved.find('p1')).toBeDefined();
    await unsaved.close(100);
  });

  it('drops the oldest beyond the bound and logs one line per interval with counts and ids only', async () => {
    const { unsaved, store, lines } = setup({ max: 3, logEveryMs: 150, retryMinMs: 60_000, retryMaxMs: 60_000 });
    for (let i = 1; i <= 5; i++) unsaved.keep(`p${i}`, decision());
    // The first keep logs at once; the rest wait for the interval to end.
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', waiting: 1, kept: 1, dropped: 0 });
    await until(() => lines.length === 2, 'the next interval’s line');
    expect(lines[1]).toMatchObject({ level: 'warn', waiting: 3, kept: 4, dropped: 2, droppedTotal: 2, lastDroppedPaymentId: 'p2', msg: expect.stringMatching(/dropped/) });
    await sleep(200);
    expect(lines).toHaveLength(2);
    store.up = true;
    expect(await unsaved.flush()).toBe(true);
    expect(store.writes).toEqual(['p3', 'p4', 'p5']);
    await until(() => lines.length === 3, 'the written line');
    expect(lines[2]).toMatchObject({ level: 'info', waiting: 0, written: 3, kept: 0, dropped: 0 });
    // Nothing in a line but counts, ids and the Redis error: no verdicts, no features.
    for (const line of lines) expect(Object.keys(line).filter((k) => !['level', 'time', 'service', 'msg', 'err'].includes(k)).sort()).toEqual(expect.arrayContaining(['waiting', 'kept', 'written', 'dropped', 'droppedTotal']));
    expect(JSON.stringify(lines)).not.toMatch(/verdict|features|REDIS_UNAVAILABLE/);
    await unsaved.close(100);
  });

  it('on close makes one last try within the budget and logs what it could not write as a count', async () => {
    const { unsaved, store, lines } = setup({ retryMinMs: 60_000, retryMaxMs: 60_000 });
    unsaved.keep('p1', decision());
    unsaved.keep('p2', decision());
    store.hang = true;
    const started = Date.now();
    await unsaved.close(50);
    expect(Date.now() - started).toBeLessThan(1_000);
    const last = lines.at(-1)!;
    expect(last).toMatchObject({ level: 'warn', notStored: 2, msg: expect.stringMatching(/risk\.scored events on JetStream/) });
  });

  it('on close writes what waits when Redis answers', async () => {
    const { unsaved, store, lines } = setup({ retryMinMs: 60_000, retryMaxMs: 60_000 });
    unsaved.keep('p1', decision());
    store.up = true;
    await unsaved.close(1_000);
    expect(store.writes).toEqual(['p1']);
    expect(lines.some((l) => 'notStored' in l)).toBe(false);
  });
});
