// A memo of what a survey meets again and again (certificates, DKIM keys, TLS secure contexts, CA files): a
// Map of at most `max` entries, emptied when full. A survey's working set turns over with its MX hosts, so
// recomputing after a clear costs less than LRU bookkeeping on every hit; the bound keeps hostile input from
// growing it.

export interface BoundedMemo<V> {
  /** The value remembered for `key`, else `compute()`'s, remembered. */
  get(key: string, compute: () => V): V;
  /** The value remembered for `key`, or undefined; computes nothing. */
  peek(key: string): V | undefined;
}

export function boundedMemo<V>(max: number): BoundedMemo<V> {
  const map = new Map<string, V>();
  return {
    get(key, compute) {
      if (map.has(key)) return map.get(key)!;
      const value = compute();
      if (map.size >= max) map.clear();
      map.set(key, value);
      return value;
    },
    peek: (key) => map.get(key),
  };
}
