// How deep a JSON-like value nests, checked with an explicit stack: a value
// nested thousands of levels deep must be refused, not overflow the call stack
// of whatever walks it next (JSON.stringify, a serialiser, a client).

/**
 * True when `value` nests objects and arrays more than `max` levels deep
 * (a scalar is 0 levels, `{}` is 1, `{"a":[]}` is 2), or is circular.
 * Stops at the first branch over the limit.
 */
export function nestedDeeperThan (value: unknown, max: number): boolean {
  const stack: Array<{ v: unknown, depth: number }> = [{ v: value, depth: 0 }]
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!
    if (typeof v !== 'object' || v === null) continue
    // A cycle never ends, so it is over any limit too.
    if (depth + 1 > max) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push({ v: child, depth: depth + 1 })
    }
  }
  return false
}
