// Preloaded into every benchmarked server (`node --expose-gc --import ./bench/servers/probe.mjs …`),
// ours included, so heap-after-GC is measured the same way everywhere without a
// line of product code. The harness asks over the IPC channel it opened.
if (typeof process.send === 'function') {
  process.on('message', (msg) => {
    if (msg === null || typeof msg !== 'object' || msg.probe !== 'mem') return
    if (typeof globalThis.gc === 'function') { globalThis.gc(); globalThis.gc() }
    const m = process.memoryUsage()
    process.send({ probe: 'mem', id: msg.id, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, gc: typeof globalThis.gc === 'function' })
  })
  // The channel must not keep a server alive once it has shut down.
  process.channel?.unref()
}
