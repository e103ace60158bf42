// A token bucket: `rate` tokens a second, holding at most `burst`.
export class TokenBucket {
  #tokens: number
  #last: number

  constructor (readonly rate: number, readonly burst: number, now = Date.now()) {
    this.#tokens = burst
    this.#last = now
  }

  /** Takes one token; false when the bucket is empty. */
  take (now = Date.now()): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate)
    this.#last = now
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}
