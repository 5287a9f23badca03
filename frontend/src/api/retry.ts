/**
 * Retry policy shared by every request the page makes: capped exponential
 * backoff with full jitter, honouring the server's Retry-After, and never
 * retrying a request the server has judged wrong (400, 404, 422, ...).
 *
 * Full jitter (a uniformly random wait between 0 and the capped exponential
 * ceiling) keeps many pages that lost the server at the same moment from
 * coming back in lockstep.
 */

export interface BackoffPolicy {
  /** Ceiling of the first retry's wait. */
  baseMs: number;
  /** No wait computed from the exponent exceeds this. */
  capMs: number;
  /** A Retry-After larger than this is treated as this (a bad header cannot park the page). */
  maxRetryAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  baseMs: 500,
  capMs: 30_000,
  maxRetryAfterMs: 5 * 60_000,
};

export type Random = () => number;

/** Upper bound of the wait before retry number `attempt` (0 for the first retry). */
export function backoffCeiling(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const exponent = Math.max(0, Math.min(attempt, 52));
  return Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
}

/** A uniformly random wait in [0, ceiling): "full jitter". */
export function fullJitterDelay(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: Random = Math.random,
): number {
  const r = Math.min(Math.max(random(), 0), 1 - Number.EPSILON);
  return Math.floor(r * backoffCeiling(attempt, policy));
}

/**
 * The wait before the next retry. A Retry-After from the server is a floor:
 * the page never comes back sooner than it was asked to.
 */
export function retryDelay(
  attempt: number,
  retryAfterMs: number | null,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: Random = Math.random,
): number {
  const jitter = fullJitterDelay(attempt, policy, random);
  if (retryAfterMs === null) return jitter;
  return Math.max(Math.min(retryAfterMs, policy.maxRetryAfterMs), jitter);
}

/**
 * Parses a Retry-After header (RFC 9110: delay-seconds or an HTTP-date)
 * into milliseconds from `nowMs`. Returns null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === "") return null;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP-date always names the day and month ("Wed, 21 Oct 2015 07:28:00 GMT").
  if (!/[a-z]{3}/i.test(text)) return null;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

/**
 * Statuses worth trying again: the server was busy, overloaded, rate
 * limiting, or (409) still processing the same Idempotency-Key. Everything
 * else in 4xx means the request itself is wrong and repeating it cannot help.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 425 || status === 429 || status >= 500;
}

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const sleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

export function abortError(): DOMException {
  return new DOMException("The request was aborted.", "AbortError");
}

export function isAbortError(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

export interface RetryInfo {
  /** How many attempts have failed so far (1 after the first failure). */
  failures: number;
  delayMs: number;
  /** The response that failed, or the network error. */
  cause: Response | unknown;
}

export interface RetryOptions {
  policy?: BackoffPolicy;
  /** Total attempts, the first included. Infinity keeps going until success or a final answer. */
  maxAttempts?: number;
  /** Aborts the current attempt and any wait. */
  signal?: AbortSignal;
  /** Each attempt is aborted after this long (a hung connection counts as a failure). */
  attemptTimeoutMs?: number;
  sleep?: Sleep;
  random?: Random;
  now?: () => number;
  onRetry?: (info: RetryInfo) => void;
}

/**
 * Runs `attempt` until it yields a response that is not worth retrying, or
 * the attempts run out. Resolves with the last response (the caller decides
 * what a non-2xx means); rejects with the last network error when no attempt
 * got a response, or with an AbortError when `signal` fires.
 */
export async function fetchWithRetry(
  attempt: (signal: AbortSignal) => Promise<Response>,
  options: RetryOptions = {},
): Promise<Response> {
  const policy = options.policy ?? DEFAULT_BACKOFF;
  const maxAttempts = options.maxAttempts ?? 5;
  const wait = options.sleep ?? sleep;
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;

  for (let failures = 0; ; ) {
    if (options.signal?.aborted) throw abortError();
    let outcome: Response | unknown;
    let retryAfterMs: number | null = null;
    try {
      const response = await runAttempt(attempt, options.signal, options.attemptTimeoutMs);
      if (response.ok || !isRetryableStatus(response.status)) return response;
      outcome = response;
      retryAfterMs = parseRetryAfter(response.headers.get("Retry-After"), now());
      failures += 1;
      if (failures >= maxAttempts) return response;
      // The body of a response we give up on is not needed: free the connection.
      response.body?.cancel().catch(() => undefined);
    } catch (error) {
      if (options.signal?.aborted) throw abortError();
      outcome = error;
      failures += 1;
      if (failures >= maxAttempts) throw error;
    }
    const delayMs = retryDelay(failures - 1, retryAfterMs, policy, random);
    options.onRetry?.({ failures, delayMs, cause: outcome });
    await wait(delayMs, options.signal);
  }
}

async function runAttempt(
  attempt: (signal: AbortSignal) => Promise<Response>,
  outer: AbortSignal | undefined,
  timeoutMs: number | undefined,
): Promise<Response> {
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  outer?.addEventListener("abort", onAbort, { once: true });
  let timedOut = false;
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          controller.abort();
        }, timeoutMs);
  try {
    return await attempt(controller.signal);
  } catch (error) {
    if (timedOut) throw new TypeError(`No answer within ${Math.round((timeoutMs ?? 0) / 1000)} s`, { cause: error });
    throw error;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
  }
}
