// Notification ids: UUIDv7 (RFC 9562), time-ordered, so the store's unique index
// on id takes appends at its end instead of random inserts all over it. Built on
// node's randomUUID, which draws from a cached pool of random bytes (the uuid
// package's v7 reads fresh bytes from the kernel per id).
import { randomUUID } from 'node:crypto'

/** The time part of the last id, `xxxxxxxx-xxxx-7`, and its millisecond: the ids of a batch share it. */
let prefixMs = -1
let prefix = ''

/** A UUIDv7: 48 bits of Unix time in ms, version 7, then randomUUID's random bits and variant. */
export function uuidv7 (now = Date.now()): string {
  if (now !== prefixMs) {
    const ts = now.toString(16).padStart(12, '0')
    prefix = `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7`
    prefixMs = now
  }
  // randomUUID: xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx; its version digit is at 14.
  return prefix + randomUUID().slice(15)
}
