import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { METRIC_VIEWS, metricReaders, metricsPortFrom } from './metrics-reader';
import { METRIC, observeGauges, recordPayment, recordRpc } from './metrics';

/** A meter provider with the views register.ts installs, read on demand. */
function provider() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader], views: METRIC_VIEWS });
  const collect = async (): Promise<ResourceMetrics> => {
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    return resourceMetrics;
  };
  return { meterProvider, collect };
}

const named = (rm: ResourceMetrics, name: string) => rm.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);

describe('metrics', () => {
  const { meterProvider, collect } = provider();
  beforeAll(() => metrics.setGlobalMeterProvider(meterProvider));
  afterAll(async () => {
    metrics.disable();
    await meterProvider.shutdown();
  });

  it('records rpc.server.duration in seconds by service, method and numeric status (OTel RPC conventions)', async () => {
    recordRpc('/wristpay.gateway.v1.GatewayService/Authorize', 0, 0.012);
    recordRpc('/wristpay.gateway.v1.GatewayService/Authorize', 0, 0.3);
    recordRpc('/wristpay.gateway.v1.GatewayService/Authorize', 14, 2);
    const m = named(await collect(), METRIC.rpcServerDuration)!;
    expect(m.descriptor.unit).toBe('s');
    expect(m.dataPointType).toBe(DataPointType.HISTOGRAM);
    const points = m.dataPoints.map((p) => ({ attributes: p.attributes, count: (p.value as { count: number }).count, sum: (p.value as { sum: number }).sum }));
    expect(points).toEqual([
      { attributes: { 'rpc.system': 'grpc', 'rpc.service': 'wristpay.gateway.v1.GatewayService', 'rpc.method': 'Authorize', 'rpc.grpc.status_code': 0 }, count: 2, sum: 0.312 },
      { attributes: { 'rpc.system': 'grpc', 'rpc.service': 'wristpay.gateway.v1.GatewayService', 'rpc.method': 'Authorize', 'rpc.grpc.status_code': 14 }, count: 1, sum: 2 },
    ]);
  });

  it('counts payments by decision and a lower-case reason, "none" when there is none', async () => {
    recordPayment('APPROVED', '');
    recordPayment('DECLINED', 'INSUFFICIENT_FUNDS');
    recordPayment('DECLINED', 'INSUFFICIENT_FUNDS');
    const m = named(await collect(), METRIC.payments)!;
    expect(m.dataPoints.map((p) => [p.attributes, p.value])).toEqual([
      [{ decision: 'APPROVED', reason: 'none' }, 1],
      [{ decision: 'DECLINED', reason: 'insufficient_funds' }, 2],
    ]);
  });

  it('observes gauges only at collection, and not after they are removed', async () => {
    let reads = 0;
    const stop = observeGauges([{ name: 'wristpay.test.gauge', description: 'test', integer: true }], (record) => {
      reads++;
      record('wristpay.test.gauge', 7, { consumer: 'c' });
    });
    expect(reads).toBe(0);
    expect(named(await collect(), 'wristpay.test.gauge')!.dataPoints.map((p) => [p.attributes, p.value])).toEqual([[{ consumer: 'c' }, 7]]);
    expect(reads).toBe(1);
    stop();
    await collect();
    expect(reads).toBe(1);
  });

  it('drops the pg instrumentation\'s instruments and the event-loop percentiles other than p99', async () => {
    meterProvider.getMeter('@opentelemetry/instrumentation-pg').createHistogram('db.client.operation.duration').record(1);
    const runtime = meterProvider.getMeter('@opentelemetry/instrumentation-runtime-node');
    runtime.createGauge('nodejs.eventloop.delay.p50').record(1);
    runtime.createGauge('nodejs.eventloop.delay.p99').record(2);
    const rm = await collect();
    expect([named(rm, 'db.client.operation.duration'), named(rm, 'nodejs.eventloop.delay.p50')]).toEqual([undefined, undefined]);
    expect(named(rm, 'nodejs.eventloop.delay.p99')?.dataPoints.map((p) => p.value)).toEqual([2]);
  });
});

describe('METRICS_PORT', () => {
  it('is 0 (no reader at all) when unset or empty, the port otherwise, and refused when not a port', () => {
    expect([metricsPortFrom({}), metricsPortFrom({ METRICS_PORT: '' }), metricsPortFrom({ METRICS_PORT: '0' }), metricsPortFrom({ METRICS_PORT: '9464' })]).toEqual([0, 0, 0, 9464]);
    expect(() => metricsPortFrom({ METRICS_PORT: 'http' })).toThrow('METRICS_PORT');
    expect(() => metricsPortFrom({ METRICS_PORT: '70000' })).toThrow('METRICS_PORT');
    expect(metricReaders(0)).toEqual([]);
  });
});
