import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SpanRecord } from '../../platform/telemetry/file-exporter';
import { byTrace, spanMatches, type Span, type SpanKindName, type SpanQuery, type SpanSource } from './span';

// SpanKind and SpanStatusCode of @opentelemetry/api, as the file exporter writes them (numbers).
const KINDS: SpanKindName[] = ['internal', 'server', 'client', 'producer', 'consumer'];
const STATUS_ERROR = 2;

/** One line of a trace file as a Span. */
export function fromRecord(record: SpanRecord): Span {
  return {
    traceId: record.traceId,
    spanId: record.spanId,
    ...(record.parentSpanId ? { parentSpanId: record.parentSpanId } : {}),
    name: record.name,
    kind: KINDS[record.kind] ?? 'internal',
    service: record.service,
    startUs: record.startUs,
    durationUs: record.durationUs,
    error: record.status === STATUS_ERROR,
    attributes: record.attributes ?? {},
  };
}

/**
 * The local trace files: every `*.jsonl` in `dir` (platform/telemetry/file-exporter.ts writes
 * one per service). Read whole on each query: they are a local run's, not production's.
 */
export class FileSpanSource implements SpanSource {
  constructor(private readonly dir: string) {}

  describe(): string {
    return `trace files in ${this.dir}`;
  }

  private load(): Span[] {
    let files: string[];
    try {
      files = readdirSync(this.dir).filter((f) => f.endsWith('.jsonl'));
    } catch {
      throw new Error(`no trace files: ${this.dir} cannot be read (run \`npm start\` first, or pass --dir or --jaeger)`);
    }
    const spans: Span[] = [];
    for (const file of files.sort()) {
      for (const line of readFileSync(join(this.dir, file), 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          spans.push(fromRecord(JSON.parse(line) as SpanRecord));
        } catch {
          // A line cut short by a process killed mid-write: the rest of the file is still good.
        }
      }
    }
    return spans;
  }

  async trace(traceId: string): Promise<Span[]> {
    return this.load().filter((s) => s.traceId === traceId);
  }

  async find(query: SpanQuery): Promise<Span[]> {
    const traces = [...byTrace(this.load()).values()].filter((spans) => spans.some((s) => spanMatches(s, query)));
    // Newest first, as Jaeger answers, so a limit keeps the newest.
    traces.sort((a, b) => Math.min(...b.map((s) => s.startUs)) - Math.min(...a.map((s) => s.startUs)));
    return traces.slice(0, query.limit ?? traces.length).flat();
  }
}
