import { DecisionBacklog, type UnsavedDecision } from './decision-backlog';
import { degradedFeatures } from './features';
import { input } from './fixtures';

let n = 0;
/** A distinct decision object each call; `degraded` as asked. */
function decision(degraded = true): UnsavedDecision {
  n++;
  return {
    verdict: { decision: 'APPROVE', score: n, reasons: [], rulesetVersion: 'r', modelVersion: 'm', probability: 0 },
    features: degradedFeatures(input()),
    scoredAt: new Date(1_700_000_000_000 + n),
    degraded,
  };
}

const ids = (b: DecisionBacklog) => b.oldest(Number.MAX_SAFE_INTEGER).map(([id]) => id);

describe('DecisionBacklog', () => {
  it('hands entries back oldest first, n at a time', () => {
    const b = new DecisionBacklog(10);
    for (const id of ['p1', 'p2', 'p3', 'p4']) expect(b.add(id, decision())).toEqual({ outcome: 'added' });
    expect(b.size).toBe(4);
    expect(b.oldest(2).map(([id]) => id)).toEqual(['p1', 'p2']);
    expect(b.remove('p1')).toBe(true);
    b.add('p5', decision());
    expect(ids(b)).toEqual(['p2', 'p3', 'p4', 'p5']);
    expect(b.oldest(0)).toEqual([]);
  });

  it('keeps at most max: the oldest is dropped, named and counted', () => {
    const b = new DecisionBacklog(3);
    b.add('p1', decision());
    b.add('p2', decision());
    b.add('p3', decision());
    expect(b.add('p4', decision())).toEqual({ outcome: 'added', dropped: 'p1' });
    expect(b.add('p5', decision())).toEqual({ outcome: 'added', dropped: 'p2' });
    expect(b.size).toBe(3);
    expect(b.dropped).toBe(2);
    expect(ids(b)).toEqual(['p3', 'p4', 'p5']);
    expect(b.get('p1')).toBeUndefined();
    // A rescore of a payment already waiting takes no room and drops nothing.
    expect(b.add('p3', decision())).toEqual({ outcome: 'already kept' });
    expect(b.dropped).toBe(2);
  });

  it('a bound of one keeps only the newest', () => {
    const b = new DecisionBacklog(1);
    b.add('p1', decision());
    expect(b.add('p2', decision()).dropped).toBe('p1');
    expect(ids(b)).toEqual(['p2']);
    expect(b.dropped).toBe(1);
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new DecisionBacklog(0)).toThrow(RangeError);
    expect(() => new DecisionBacklog(1.5)).toThrow(RangeError);
  });

  it('a rescore keeps the first decision, but a full one replaces a degraded one in its place', () => {
    const b = new DecisionBacklog(10);
    const first = decision(true);
    b.add('p1', first);
    b.add('p2', decision());
    expect(b.add('p1', decision(true))).toEqual({ outcome: 'already kept' });
    expect(b.get('p1')).toBe(first);
    const full = decision(false);
    expect(b.add('p1', full)).toEqual({ outcome: 'replaced' });
    expect(b.get('p1')).toBe(full);
    expect(ids(b)).toEqual(['p1', 'p2']);
    // A degraded rescore never replaces a full decision.
    expect(b.add('p1', decision(true))).toEqual({ outcome: 'already kept' });
    expect(b.get('p1')).toBe(full);
  });

  it('remove with the written entry leaves one that replaced it meanwhile', () => {
    const b = new DecisionBacklog(10);
    const degraded = decision(true);
    b.add('p1', degraded);
    const full = decision(false);
    b.add('p1', full);
    expect(b.remove('p1', degraded)).toBe(false);
    expect(b.get('p1')).toBe(full);
    expect(b.remove('p1', full)).toBe(true);
    expect(b.size).toBe(0);
    expect(b.remove('p1')).toBe(false);
  });
});
