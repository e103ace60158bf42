// Time as the core reads it, injected (SessionOptions.clock), so token expiry,
// close grace and rate limits can be tested without waiting real seconds.

/** A timer as the clock that made it knows it. */
export type ClockTimer = unknown

export interface Clock {
  /** Epoch ms. */
  now (): number
  /** Calls `fn` once after `ms`; the timer does not keep the process alive. */
  setTimeout (fn: () => void, ms: number): ClockTimer
  /** Cancels a timer of this clock; undefined is ignored. */
  clearTimeout (timer: ClockTimer): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: timer => { clearTimeout(timer as NodeJS.Timeout | undefined) }
}
