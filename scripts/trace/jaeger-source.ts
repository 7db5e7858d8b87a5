import { byTrace, type Span, type SpanKindName, type SpanQuery, type SpanSource } from './span';

/** Jaeger's query API JSON (jaeger-query /api/traces): what this tool reads of it. */
export interface JaegerTag {
  key: string;
  type?: string;
  value: unknown;
}
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references?: Array<{ refType: string; traceID: string; spanID: string }>;
  startTime: number;
  duration: number;
  tags?: JaegerTag[];
  processID: string;
}
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags?: JaegerTag[] }>;
}

const KINDS: Record<string, SpanKindName> = { server: 'server', client: 'client', producer: 'producer', consumer: 'consumer', internal: 'internal' };
// Tags Jaeger derives from the OTLP span itself, not attributes the services set.
const SPAN_TAGS = new Set(['span.kind', 'otel.status_code', 'otel.status_description', 'error', 'internal.span.format', 'otel.scope.name', 'otel.scope.version', 'otel.library.name', 'otel.library.version']);

/** A Jaeger tag's value as the attribute was set: Jaeger stores array attributes as their JSON text. */
function tagValue(tag: JaegerTag): unknown {
  if (typeof tag.value === 'string' && tag.value.startsWith('[')) {
    try {
      const parsed = JSON.parse(tag.value) as unknown;
      if (Array.isArray(parsed)) return parsed;
    } catch {
      // Not JSON after all: keep the text.
    }
  }
  return tag.value;
}

/** One Jaeger trace as Spans. */
export function fromJaeger(trace: JaegerTrace): Span[] {
  return trace.spans.map((js) => {
    const tags = js.tags ?? [];
    const tag = (key: string) => tags.find((t) => t.key === key)?.value;
    const parent = js.references?.find((r) => r.refType === 'CHILD_OF' && r.traceID === js.traceID);
    const attributes: Record<string, unknown> = {};
    for (const t of tags) if (!SPAN_TAGS.has(t.key)) attributes[t.key] = tagValue(t);
    return {
      traceId: js.traceID,
      spanId: js.spanID,
      ...(parent ? { parentSpanId: parent.spanID } : {}),
      name: js.operationName,
      kind: KINDS[String(tag('span.kind') ?? 'internal')] ?? 'internal',
      service: trace.processes[js.processID]?.serviceName ?? 'unknown',
      startUs: js.startTime,
      durationUs: js.duration,
      error: tag('otel.status_code') === 'ERROR' || tag('error') === true || tag('error') === 'true',
      attributes,
    };
  });
}

const DEFAULT_LOOKBACK_US = 24 * 3600 * 1_000_000;

/**
 * Jaeger's HTTP query API (the jaeger-query deployed by k8s/: port 16686). A search needs a
 * service, so a query without one asks each service Jaeger knows (/api/services); one without a
 * start looks back a day.
 */
export class JaegerSpanSource implements SpanSource {
  private readonly base: string;

  constructor(
    address: string,
    private readonly now: () => number = Date.now,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.base = address.replace(/\/+$/, '');
  }

  describe(): string {
    return `Jaeger at ${this.base}`;
  }

  private async get<T>(path: string): Promise<T> {
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.base}${path}`, { headers: { accept: 'application/json' } });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`Jaeger at ${this.base} cannot be reached: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    if (!res.ok) throw new Error(`Jaeger ${path.split('?')[0]} answered HTTP ${res.status}`);
    const body = (await res.json()) as { data?: T; errors?: Array<{ msg?: string }> | null };
    if (body.errors?.length) throw new Error(`Jaeger ${path.split('?')[0]}: ${body.errors.map((e) => e.msg).join('; ')}`);
    return body.data as T;
  }

  /** One trace by id (/api/traces/{id}). */
  async trace(traceId: string): Promise<Span[]> {
    try {
      const data = await this.get<JaegerTrace[]>(`/api/traces/${encodeURIComponent(traceId)}`);
      return (data ?? []).flatMap(fromJaeger);
    } catch (err) {
      // Jaeger answers an unknown trace id with 404.
      if (/HTTP 404/.test((err as Error).message)) return [];
      throw err;
    }
  }

  async find(query: SpanQuery): Promise<Span[]> {
    const services = query.service ? [query.service] : ((await this.get<string[]>('/api/services')) ?? []).filter((s) => s !== 'jaeger-all-in-one' && s !== 'jaeger');
    const until = query.untilUs ?? this.now() * 1000;
    const since = query.sinceUs ?? until - DEFAULT_LOOKBACK_US;
    const seen = new Map<string, Span[]>();
    for (const service of services) {
      const params = new URLSearchParams({ service, start: String(Math.floor(since)), end: String(Math.ceil(until)), limit: String(query.limit ?? 1000) });
      if (query.operation) params.set('operation', query.operation);
      if (query.tags && Object.keys(query.tags).length) params.set('tags', JSON.stringify(query.tags));
      for (const trace of (await this.get<JaegerTrace[]>(`/api/traces?${params}`)) ?? []) {
        for (const [id, spans] of byTrace(fromJaeger(trace))) seen.set(id, [...(seen.get(id) ?? []), ...spans]);
      }
    }
    // One trace found through two services is one trace: keep each span once.
    return [...seen.values()].flatMap((spans) => [...new Map(spans.map((s) => [s.spanId, s])).values()]);
  }
}
