// Entry of the ingest worker thread (ingest/ingest-worker.ts). On Node 20 a worker gets neither the tsx loader
// of `node --import tsx` nor the one bin/mailcensus.mjs registers, and registering tsx's ESM loader inside a
// worker hangs now and then (at start, or at exit). tsx's CommonJS hook works in this thread alone, without a
// loader thread: load the TypeScript through it (so the worker has no top-level await).
import { createRequire } from 'node:module';
import { register } from 'tsx/cjs/api';

register();
const require = createRequire(import.meta.url);
await require('./ingest-worker.ts').run();
