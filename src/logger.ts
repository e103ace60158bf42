// The logging surface the core needs: pino's and Fastify's loggers both fit it.
export interface LogFn {
  (obj: object, msg?: string): void
  (msg: string): void
}

export interface Logger {
  trace: LogFn
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  child (bindings: Record<string, unknown>): Logger
  /** pino's: lets a hot path skip building a line's object when its level is off (absent: always build it). */
  isLevelEnabled? (level: string): boolean
}
