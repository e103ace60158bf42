// Words for the page: relative times, connection states, unread counts.
import type { ClientStatus } from '/client.js'

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' })
const STEPS: Array<[Intl.RelativeTimeFormatUnit, number]> = [['second', 60], ['minute', 60], ['hour', 24], ['day', 7], ['week', 4.35], ['month', 12], ['year', Infinity]]

/** "just now", "5 minutes ago", "yesterday". */
export function timeAgo (iso: string, now = Date.now()): string {
  let value = (Date.parse(iso) - now) / 1000
  if (Math.abs(value) < 10) return 'just now'
  for (const [unit, size] of STEPS) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit)
    value /= size
  }
  return new Date(iso).toLocaleString()
}

export function statusText (s: ClientStatus): string {
  switch (s.state) {
    case 'connecting': return 'Connecting…'
    case 'catching_up': return 'Catching up…'
    case 'open': return 'Connected'
    case 'reconnecting': return `Reconnecting in ${Math.max(1, Math.round(s.delayMs / 1000))} s…`
    case 'closed':
      if (s.code === 4001) return 'Session expired: sign in again'
      if (s.code === 4003) return 'Access revoked: sign in again'
      return s.code === 1000 ? 'Disconnected' : `Disconnected (${s.code})`
  }
}

/** The server caps the count at 1,000: show it as 999+. */
export function unreadText (n: number): string {
  return n >= 1000 ? '999+' : String(n)
}

/** Only web links and same-site paths become links: never javascript: or data: URLs from a notification. */
export function safeUrl (url: string): string | undefined {
  try {
    const u = new URL(url, location.origin)
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : undefined
  } catch {
    return undefined
  }
}
