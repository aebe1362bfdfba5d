// The heap policy of mailcensus's long-running processes (issue 18).
import v8 from 'node:v8';

/**
 * How far V8 lets the old generation grow past what survived the last full GC, in percent, in the long-running
 * processes that stream a lot through a bounded live heap (`worker`, `receive`). A worker holding
 * 2,500 SMTP sessions lives in about 100-150 MiB of heap, but when their greetings arrive in bursts V8's own
 * factor (up to 4x) let the heap fill with garbage to 340-440 MiB before collecting it (issue 18, `npm run
 * bench -- sessions`); at 50% it stayed under 240 MiB, with 32 full GCs in that run and under 1 s of pauses.
 * Set from the process itself (v8.setFlagsFromString: V8 reads the flag at every full GC), unless the operator
 * chose a heap policy of their own on the command line or in NODE_OPTIONS.
 */
const HEAP_GROWING_PERCENT = 50;
const HEAP_FLAGS = /--(max[-_]old[-_]space[-_]size|max[-_]heap[-_]size|heap[-_]growing[-_]percent)\b/;

export function boundHeapGrowth(): void {
  if ([...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => HEAP_FLAGS.test(a))) return;
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
