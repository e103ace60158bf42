// The notification-center page: sign-in (a token, or a user and role in demo
// mode), then one client SDK connection (imported from /client.js, the module
// the server serves) driving the list, the unread badge, the category toggles,
// the maintenance and health panels and the connection status.
import { createClient, type ClientEvents, type NotificationClient } from '/client.js'
import { byId, el } from './dom.js'
import { statusText, unreadText } from './format.js'
import { NotificationList } from './notification-list.js'
import { HealthPanel, OperationsPanel } from './panels.js'

/** The server's default categories: those the role may not see are listed as such (the connected frame names only the visible ones). */
const DEFAULT_CATEGORIES = ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user']
const PAGE_SIZE = 20
const SESSION_KEY = 'unified-notifications:session'
const TITLE = document.title

type Session = { kind: 'demo', user: string, role: string } | { kind: 'token', token: string }

const ui = {
  status: byId('status'),
  badge: byId('badge'),
  who: byId('who'),
  signOut: byId<HTMLButtonElement>('sign-out'),
  signIn: byId('sign-in'),
  demoForm: byId<HTMLFormElement>('demo-form'),
  tokenForm: byId<HTMLFormElement>('token-form'),
  signInError: byId('sign-in-error'),
  center: byId('center'),
  markAll: byId<HTMLButtonElement>('mark-all'),
  loadMore: byId<HTMLButtonElement>('load-more'),
  categories: byId('categories'),
  categoriesError: byId('categories-error'),
  mutes: byId('mutes'),
  mutesError: byId('mutes-error'),
  healthPanel: byId('health-panel'),
  announcer: byId('announcer'),
  listTitle: byId('list-title')
}

let client: NotificationClient | undefined
let demo = false

const list = new NotificationList(byId<HTMLOListElement>('list'), byId('list-empty'), byId('list-count'), id => {
  client?.markRead([id]).catch(err => announce(`Could not mark it read: ${messageOf(err)}`))
})
const operations = new OperationsPanel(byId<HTMLUListElement>('operations'), byId('ops-empty'))
const health = new HealthPanel(byId<HTMLUListElement>('health'), byId('health-empty'))

function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function announce (text: string): void {
  ui.announcer.textContent = text
}

async function demoToken (user: string, role: string): Promise<string> {
  const res = await fetch('/demo/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, role }) })
  const body = await res.json() as { token?: string, message?: string }
  if (!res.ok || body.token === undefined) throw new Error(body.message ?? `HTTP ${res.status}`)
  return body.token
}

/** A token is checked over REST first: a browser cannot read why a WebSocket upgrade was refused. */
async function checkToken (token: string): Promise<void> {
  const res = await fetch('/api/notifications?limit=1', { headers: { authorization: `Bearer ${token}` } })
  if (res.ok) return
  const body = await res.json().catch(() => ({})) as { message?: string }
  throw new Error(body.message ?? `HTTP ${res.status}`)
}

async function signIn (session: Session): Promise<void> {
  ui.signInError.textContent = ''
  if (session.kind === 'demo') await demoToken(session.user, session.role)
  else await checkToken(session.token)
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session))
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`
  const c = createClient({
    url: wsUrl,
    // Demo: a new token on every connect and before expiry. A pasted token cannot be renewed.
    token: session.kind === 'demo' ? () => demoToken(session.user, session.role) : session.token
  })
  client = c
  let first = true
  c.on('status', s => {
    if (client !== c) return
    ui.status.dataset.state = s.state
    ui.status.textContent = statusText(s)
    if (s.state === 'closed' && (s.code === 4001 || s.code === 4003)) signOut(statusText(s))
  })
  c.on('connected', f => {
    ui.who.textContent = `${f.user.id} (${f.user.role})`
    renderCategories(c, f)
    void renderMutes(c, session, f)
    if (!first) return
    first = false
    ui.healthPanel.hidden = f.user.role !== 'admin'
    void loadInitial(c, f)
  })
  c.on('replayed', r => {
    // The cursor no longer fits the log (history pruned, a new log): reload what is shown.
    if (!r.complete) {
      list.clear()
      void loadMore(c)
    }
  })
  c.on('notification', n => {
    list.addLive(n)
    if (OperationsPanel.isOperation(n)) operations.update(n)
    else announce(`New notification: ${n.title}`)
    if (n.category === 'health') health.update(n)
  })
  c.on('preferences', p => {
    // Muted here or on another device: the subscriptions and the mute boxes follow.
    for (const box of ui.categories.querySelectorAll<HTMLInputElement>('input[name="category"]')) box.checked = p.subscriptions.includes(box.value)
    for (const box of ui.mutes.querySelectorAll<HTMLInputElement>('input[name="mute"]')) box.checked = p.muted.includes(box.value)
  })
  c.on('unread', change => {
    const n = change.unread
    ui.badge.textContent = unreadText(n)
    ui.badge.dataset.count = String(n)
    ui.badge.setAttribute('aria-label', n === 0 ? 'No unread notifications' : `${unreadText(n)} unread notifications`)
    document.title = n > 0 ? `(${unreadText(n)}) ${TITLE}` : TITLE
    list.markRead(change)
  })
  ui.signIn.hidden = true
  ui.center.hidden = false
  ui.signOut.hidden = false
  ui.listTitle.focus()
}

async function loadInitial (c: NotificationClient, f: ClientEvents['connected']): Promise<void> {
  await loadMore(c)
  try {
    if (f.categories.includes('maintenance')) {
      const ops = await c.history({ categories: ['maintenance'], limit: PAGE_SIZE })
      for (const n of [...ops.notifications].reverse()) if (OperationsPanel.isOperation(n)) operations.update(n)
    }
    if (f.user.role === 'admin') {
      const reports = await c.history({ categories: ['health'], limit: 50 })
      for (const n of reports.notifications) health.update(n)
    }
  } catch (err) {
    announce(`Could not load history: ${messageOf(err)}`)
  }
}

async function loadMore (c: NotificationClient): Promise<void> {
  ui.loadMore.disabled = true
  try {
    const before = list.oldestSeq
    const page = await c.history({ limit: PAGE_SIZE, ...(before !== undefined ? { before } : {}) })
    list.addOlder(page.notifications)
    ui.loadMore.hidden = !page.hasMore
  } catch (err) {
    announce(`Could not load history: ${messageOf(err)}`)
  } finally {
    ui.loadMore.disabled = false
  }
}

function renderCategories (c: NotificationClient, f: ClientEvents['connected']): void {
  const all = [...new Set([...DEFAULT_CATEGORIES, ...f.categories])]
  const boxes = all.map(category => {
    const visible = f.categories.includes(category)
    const id = `category-${category}`
    const box = el('input', { type: 'checkbox', id, name: 'category', value: category, checked: f.subscriptions.includes(category), disabled: !visible })
    box.addEventListener('change', () => { void toggle(c, box) })
    return el('div', { class: `category${visible ? '' : ' locked'}` }, box,
      el('label', { for: id }, category, visible ? '' : ' (not available to your role)'))
  })
  ui.categories.replaceChildren(...boxes)
}

/** The user's muted and locked categories, over REST (no frame reads them). */
async function fetchPreferences (session: Session): Promise<{ muted: string[], locked: string[] }> {
  const token = session.kind === 'demo' ? await demoToken(session.user, session.role) : session.token
  const res = await fetch('/api/preferences', { headers: { authorization: `Bearer ${token}` } })
  if (!res.ok) throw new Error(`HTTP ${res.status}`)
  return await res.json() as { muted: string[], locked: string[] }
}

async function renderMutes (c: NotificationClient, session: Session, f: ClientEvents['connected']): Promise<void> {
  ui.mutesError.textContent = ''
  let prefs: { muted: string[], locked: string[] }
  try {
    prefs = await fetchPreferences(session)
  } catch (err) {
    ui.mutesError.textContent = `Could not read your preferences: ${messageOf(err)}`
    return
  }
  const boxes = f.categories.map(category => {
    const locked = prefs.locked.includes(category)
    const id = `mute-${category}`
    const box = el('input', { type: 'checkbox', id, name: 'mute', value: category, checked: prefs.muted.includes(category), disabled: locked })
    box.addEventListener('change', () => { void setMuted(c, box) })
    return el('div', { class: `category${locked ? ' locked' : ''}` }, box,
      el('label', { for: id }, category, locked ? ' (always delivered)' : ''))
  })
  ui.mutes.replaceChildren(...boxes)
}

async function setMuted (c: NotificationClient, box: HTMLInputElement): Promise<void> {
  ui.mutesError.textContent = ''
  const muted = [...ui.mutes.querySelectorAll<HTMLInputElement>('input[name="mute"]:checked')].map(b => b.value)
  box.disabled = true
  try {
    await c.setPreferences(muted)
  } catch (err) {
    box.checked = !box.checked
    ui.mutesError.textContent = `Could not change ${box.value}: ${messageOf(err)}`
  } finally {
    box.disabled = false
  }
}

async function toggle (c: NotificationClient, box: HTMLInputElement): Promise<void> {
  ui.categoriesError.textContent = ''
  box.disabled = true
  try {
    const { subscriptions } = box.checked ? await c.subscribe([box.value]) : await c.unsubscribe([box.value])
    box.checked = subscriptions.includes(box.value)
  } catch (err) {
    box.checked = !box.checked
    ui.categoriesError.textContent = `Could not change ${box.value}: ${messageOf(err)}`
  } finally {
    box.disabled = false
  }
}

function signOut (reason = ''): void {
  client?.close()
  client = undefined
  sessionStorage.removeItem(SESSION_KEY)
  list.clear()
  ui.center.hidden = true
  ui.signOut.hidden = true
  ui.signIn.hidden = false
  ui.who.textContent = ''
  ui.signInError.textContent = reason
  document.title = TITLE
  ui.badge.textContent = '0'
  ui.badge.dataset.count = '0'
  ui.badge.setAttribute('aria-label', 'No unread notifications')
  ui.status.dataset.state = 'idle'
  ui.status.textContent = 'Not connected'
  operations.clear()
  ui.mutes.replaceChildren()
  health.clear()
  ui.healthPanel.hidden = true
}

ui.demoForm.addEventListener('submit', ev => {
  ev.preventDefault()
  const data = new FormData(ui.demoForm)
  signIn({ kind: 'demo', user: String(data.get('user')), role: String(data.get('role')) })
    .catch(err => { ui.signInError.textContent = `Sign-in failed: ${messageOf(err)}` })
})
ui.tokenForm.addEventListener('submit', ev => {
  ev.preventDefault()
  const token = String(new FormData(ui.tokenForm).get('token')).trim()
  signIn({ kind: 'token', token }).catch(err => { ui.signInError.textContent = `Sign-in failed: ${messageOf(err)}` })
})
ui.signOut.addEventListener('click', () => signOut())
ui.markAll.addEventListener('click', () => {
  client?.markRead('all').catch(err => announce(`Could not mark all read: ${messageOf(err)}`))
})
ui.loadMore.addEventListener('click', () => { if (client) void loadMore(client) })
setInterval(() => { list.tick(); health.render() }, 15_000)

async function start (): Promise<void> {
  // Demo mode is on when the demo route exists: it answers an empty body with 400, and is 404 otherwise.
  demo = await fetch('/demo/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    .then(res => res.status === 400, () => false)
  ui.demoForm.hidden = !demo
  ui.tokenForm.hidden = demo
  const saved = sessionStorage.getItem(SESSION_KEY)
  if (saved !== null) {
    try {
      await signIn(JSON.parse(saved) as Session)
    } catch (err) {
      sessionStorage.removeItem(SESSION_KEY)
      ui.signInError.textContent = `Sign-in failed: ${messageOf(err)}`
    }
  }
}

void start()
