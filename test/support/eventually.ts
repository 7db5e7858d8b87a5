/**
 * Waits until `check` returns a value other than undefined/false (or stops throwing), polling
 * every `everyMs`; rejects after `timeoutMs` with `what` and the last error. The one way tests
 * wait for something asynchronous (CONVENTIONS.md), instead of a sleep.
 */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000, what = 'the condition', everyMs = 20): Promise<Exclude<T, undefined | false>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as Exclude<T, undefined | false>;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
