/**
 * The one span model the trace tool reads, whatever the source (the file exporter's JSON lines
 * or Jaeger's query API): both sources turn their format into this, so the output is the same.
 */
export type SpanKindName = 'internal' | 'server' | 'client' | 'producer' | 'consumer';

export interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: SpanKindName;
  service: string;
  /** Microseconds since the epoch. */
  startUs: number;
  durationUs: number;
  error: boolean;
  attributes: Record<string, unknown>;
}

/** What to look for: traces with a span of `service` (any if unset) carrying every tag, started in [sinceUs, untilUs]. */
export interface SpanQuery {
  service?: string;
  operation?: string;
  tags?: Record<string, string>;
  sinceUs?: number;
  untilUs?: number;
  /** At most this many traces (the newest). */
  limit?: number;
}

/** Where spans come from. `find` returns every span of each matching trace. */
export interface SpanSource {
  find(query: SpanQuery): Promise<Span[]>;
  /** Every span of one trace (none if it is not there). */
  trace(traceId: string): Promise<Span[]>;
  describe(): string;
}

/** Does `span` satisfy `query`'s span conditions (service, operation, tags, time)? */
export function spanMatches(span: Span, query: SpanQuery): boolean {
  if (query.service && span.service !== query.service) return false;
  if (query.operation && span.name !== query.operation) return false;
  if (query.sinceUs !== undefined && span.startUs < query.sinceUs) return false;
  if (query.untilUs !== undefined && span.startUs > query.untilUs) return false;
  for (const [key, value] of Object.entries(query.tags ?? {})) if (attributeText(span.attributes[key]) !== value) return false;
  return true;
}

/** An attribute as text (arrays joined with commas), as tags are compared and printed. */
export function attributeText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(String).join(',');
  return String(value);
}

/** The spans grouped by trace id. */
export function byTrace(spans: Span[]): Map<string, Span[]> {
  const traces = new Map<string, Span[]>();
  for (const span of spans) {
    const list = traces.get(span.traceId) ?? [];
    list.push(span);
    traces.set(span.traceId, list);
  }
  return traces;
}
