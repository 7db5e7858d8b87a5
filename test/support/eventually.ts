/**
 * Waits until `check` resolves true (polling every `everyMs`); rejects naming `what` once
 * `timeoutMs` has passed. The one way tests wait for something asynchronous (CONVENTIONS.md).
 */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 50): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
