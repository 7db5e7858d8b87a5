/**
 * Waits until `check` returns something other than undefined or false, polling every `everyMs`,
 * and resolves with it; rejects naming `what` once `timeoutMs` has passed, or at once with the
 * error `check` throws (a check that can no longer succeed should say so, not time out). The
 * one way tests wait for something asynchronous (CONVENTIONS.md), instead of a sleep.
 */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000, what = 'the condition', everyMs = 20): Promise<Exclude<T, undefined | false>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as Exclude<T, undefined | false>;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
