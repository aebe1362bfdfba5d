// Preloaded into a benchmark worker (`node --import ./bench/lib/mem-sampler.mjs`): appends the process's own
// memory figures (process.memoryUsage(): rss, heapUsed, heapTotal, external, arrayBuffers) as one JSON line a
// second to the file named by BENCH_MEM_LOG. Linux's /proc gives the RSS from outside; the V8 heap is only
// visible from inside. Nothing else of the worker changes; the timer is unref'd, so it never keeps it alive.
import { appendFileSync } from 'node:fs';

const file = process.env.BENCH_MEM_LOG;
if (file) {
  const sample = () => {
    const m = process.memoryUsage();
    try {
      appendFileSync(file, `${JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers })}\n`);
    } catch {
      // a full disk must not take the worker down
    }
  };
  setInterval(sample, 1000).unref();
}
