// Notification ids: UUIDv7 (RFC 9562), time-ordered, so the store's unique index
// on id takes appends at its end instead of random inserts all over it. Built on
// node's randomUUID, which draws from a cached pool of random bytes (the uuid
// package's v7 reads fresh bytes from the kernel per id).
import { randomUUID } from 'node:crypto'

/** A UUIDv7: 48 bits of Unix time in ms, version 7, then randomUUID's random bits and variant. */
export function uuidv7 (now = Date.now()): string {
  const ts = now.toString(16).padStart(12, '0')
  // randomUUID: xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx; its version digit is at 14.
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${randomUUID().slice(15)}`
}
