// Many jobs' small database calls as one (issue 18): a worker runs 150 jobs at once, and each of them wanted a
// round trip of its own for the same kind of query (probe results read, a diagnosis written). A batcher
// collects the calls made within `maxWaitMs` (or until `maxItems` are there), makes one call for all of them,
// and answers each caller with its own result — or, when the one call fails, fails every caller, so every job
// in the batch fails and is retried as it would have been alone. Nothing is kept past a failure: a batch is
// never lost silently.

export interface BatcherOptions<I, O> {
  /** One call for all the items; returns one result per item, in the items' order. */
  run(items: I[]): Promise<O[]>;
  /** A batch goes once it has this many items. */
  maxItems: number;
  /** ...or this long after its first item arrived. */
  maxWaitMs: number;
}

export interface Batcher<I, O> {
  /** Queues `item` for the next batch; resolves with its result once that batch is done. */
  add(item: I): Promise<O>;
  /** Sends what is queued now, and waits for every batch under way. */
  flush(): Promise<void>;
  /** From now on every item goes at once (a stopping worker must not wait for a timer); then flushes. */
  drain(): Promise<void>;
  /** Items queued and not yet sent. */
  readonly queued: number;
}

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  let queue: { item: I; resolve: (o: O) => void; reject: (err: unknown) => void }[] = [];
  let timer: NodeJS.Timeout | null = null;
  let draining = false;
  const inFlight = new Set<Promise<void>>();

  const send = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    const p = (async () => {
      try {
        const results = await options.run(batch.map((b) => b.item));
        if (results.length !== batch.length) throw new Error(`a batch of ${batch.length} returned ${results.length} results`);
        batch.forEach((b, i) => b.resolve(results[i]!));
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    })();
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  return {
    add(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (draining || queue.length >= options.maxItems) send();
        else if (!timer) timer = setTimeout(send, options.maxWaitMs);
      });
    },
    async flush() {
      send();
      await Promise.all([...inFlight]);
    },
    async drain() {
      draining = true;
      send();
      await Promise.all([...inFlight]);
    },
    get queued() {
      return queue.length;
    },
  };
}
