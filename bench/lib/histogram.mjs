// Latency histogram: 0.1 ms buckets below 100 ms, 1 ms buckets up to 60 s,
// so recording a sample is one increment and percentiles are exact to a bucket.
const FINE = 1000 // 0..100 ms by 0.1
const COARSE = 59_900 // 100 ms..60 s by 1
export const HISTOGRAM_SIZE = FINE + COARSE + 1

export function createHistogram () {
  return new Uint32Array(HISTOGRAM_SIZE)
}

export function record (h, ms) {
  let i
  if (ms < 0) i = 0
  else if (ms < 100) i = Math.floor(ms * 10)
  else i = Math.min(FINE + Math.floor(ms - 100), HISTOGRAM_SIZE - 1)
  h[i]++
}

function bucketValue (i) {
  return i < FINE ? (i + 0.5) / 10 : 100 + (i - FINE) + 0.5
}

/** {count, p50, p95, p99, max} in ms; nulls when empty. */
export function summarise (h) {
  let count = 0
  for (let i = 0; i < h.length; i++) count += h[i]
  if (count === 0) return { count: 0, p50: null, p95: null, p99: null, max: null }
  const want = [0.5, 0.95, 0.99].map(q => Math.max(1, Math.ceil(q * count)))
  const out = []
  let seen = 0
  let max = 0
  for (let i = 0; i < h.length; i++) {
    if (h[i] === 0) continue
    seen += h[i]
    max = i
    while (out.length < want.length && seen >= want[out.length]) out.push(bucketValue(i))
  }
  const r = (v) => Math.round(v * 10) / 10
  return { count, p50: r(out[0]), p95: r(out[1]), p99: r(out[2]), max: r(bucketValue(max)) }
}
