export const TELEMETRY_KEY = Symbol.for('wristpay.telemetry.sdk');

/** Flushes and stops the telemetry SDK if register.ts loaded one; a no-op otherwise (unit tests). */
export async function shutdownTelemetry(): Promise<void> {
  const sdk = (globalThis as Record<symbol, { shutdown(): Promise<void> } | undefined>)[TELEMETRY_KEY];
  await sdk?.shutdown().catch(() => undefined);
}
