// Per-connection limits, each configurable through the root plugin's `limits` option.
export interface Limits {
  /** Largest client frame in bytes; a bigger one closes the connection with 1009. */
  maxPayload: number
  /** Unsent bytes a connection may hold before it is closed with 4009 (slow consumer). */
  sendBufferBytes: number
  /** Client requests a connection may make per second, sustained. */
  requestsPerSecond: number
  /** Client requests allowed in a burst above the sustained rate. */
  requestBurst: number
  /** Requests refused with rate_limited in a row before the connection is closed with 4008. */
  rateLimitedBeforeClose: number
  /** Bad frames (bad_request, unknown_type) a connection may send per minute before close 4008. */
  badFramesPerMinute: number
  /** Open connections one user may hold at once; more is refused with HTTP 403 before the upgrade. */
  maxConnectionsPerUser: number
}

export const DEFAULT_LIMITS: Limits = {
  maxPayload: 64 * 1024,
  sendBufferBytes: 1024 * 1024,
  requestsPerSecond: 50,
  requestBurst: 100,
  rateLimitedBeforeClose: 50,
  badFramesPerMinute: 20,
  maxConnectionsPerUser: 20
}
