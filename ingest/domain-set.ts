// The set of domains an ingest has accepted so far, with the line each was first seen on: the de-duplication
// of a file. A Map<string, number> of a million domains cost ~25% of an ingest and most of its GC (a million
// long-lived strings, each a slice keeping its parser chunk alive); this keeps the names as bytes in one
// growing arena and an open-addressing table of int32 slots, so the heap holds a handful of typed arrays
// whatever the file's size. Names are normalised domains: ASCII only (one byte per character).
//
// A slot holds the entry's hash next to its index, so a probe reads one cache line and looks at the entry
// (length, arena) only when the hashes agree: with a million names the table is far bigger than the caches,
// and a new name, the common case, then costs one miss instead of four (issue 18's profile).

const EMPTY = -1;
const MAX_ENTRIES = 1 << 28; // far more than any list; bounds the growth

export class DomainSet {
  /** Slot i is [2i] entry index (or EMPTY) and [2i + 1] its hash. Slot count is a power of two, at most half full. */
  private slots = new Int32Array(2 << 16).fill(EMPTY);
  private starts = new Int32Array(1 << 15);
  private lengths = new Uint16Array(1 << 15);
  private lines = new Int32Array(1 << 15);
  private arena = new Uint8Array(1 << 20);
  /** add()'s name as bytes (grown to the longest name added). */
  private scratch = new Uint8Array(256);
  private used = 0;
  size = 0;

  /**
   * Adds `name` first seen on `line`. Returns -1 when it is new, or the line it was first seen on.
   * `name` must be ASCII and at most 65,535 characters (a normalised domain is at most 253): its bytes are its
   * character codes, so it goes through addBytes, the one hash and probe of the table.
   */
  add(name: string, line: number): number {
    const n = name.length;
    if (n > this.scratch.length) this.scratch = new Uint8Array(n);
    const b = this.scratch;
    for (let i = 0; i < n; i++) b[i] = name.charCodeAt(i);
    return this.addBytes(b, 0, n, line);
  }

  /** add() for the name in bytes[from, to), ASCII (the ingest's byte path, which needs no copy). */
  addBytes(bytes: Uint8Array, from: number, to: number, line: number): number {
    const n = to - from;
    let h = 0x811c9dc5 | 0; // FNV-1a, 32 bits
    for (let i = from; i < to; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
    const slots = this.slots;
    const mask = (slots.length >> 1) - 1;
    for (let s = h & mask, probes = 0; probes <= mask; s = (s + 1) & mask, probes++) {
      const e = slots[2 * s];
      if (e === EMPTY) {
        const a = this.room(n);
        for (let i = from, p = this.used; i < to; i++, p++) a[p] = bytes[i];
        this.record(s, h, n, line);
        return -1;
      }
      if (slots[2 * s + 1] === h && this.lengths[e] === n && this.equalsBytes(e, bytes, from, n)) return this.lines[e];
    }
    throw new Error('DomainSet: table full'); // unreachable: the table is kept at most half full
  }

  private equalsBytes(e: number, bytes: Uint8Array, from: number, n: number): boolean {
    const a = this.arena;
    for (let i = 0, p = this.starts[e]; i < n; i++, p++) if (a[p] !== bytes[from + i]) return false;
    return true;
  }

  /** The arena, with room for n more bytes at `used`, and room for one more entry. */
  private room(n: number): Uint8Array {
    if (this.size >= MAX_ENTRIES) throw new Error(`DomainSet: more than ${MAX_ENTRIES} domains`);
    if (this.size === this.starts.length) this.growEntries();
    if (this.used + n > this.arena.length) {
      const bigger = new Uint8Array(Math.max(this.arena.length * 2, this.used + n));
      bigger.set(this.arena.subarray(0, this.used));
      this.arena = bigger;
    }
    return this.arena;
  }

  /** Records, in slot `slot`, the entry whose n bytes were just written at `used`. */
  private record(slot: number, h: number, n: number, line: number): void {
    const e = this.size;
    this.starts[e] = this.used;
    this.lengths[e] = n;
    this.lines[e] = line;
    this.used += n;
    this.size = e + 1;
    this.slots[2 * slot] = e;
    this.slots[2 * slot + 1] = h;
    if (this.size * 4 > this.slots.length) this.rehash(); // more than half of the slots (2 ints each) used
  }

  private growEntries(): void {
    const n = this.starts.length * 2;
    const grow = <T extends Int32Array | Uint16Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.starts = grow(this.starts, (k) => new Int32Array(k));
    this.lengths = grow(this.lengths, (k) => new Uint16Array(k));
    this.lines = grow(this.lines, (k) => new Int32Array(k));
  }

  private rehash(): void {
    const old = this.slots;
    const slots = new Int32Array(old.length * 2).fill(EMPTY);
    const mask = (slots.length >> 1) - 1;
    for (let i = 0; i < old.length; i += 2) {
      const e = old[i];
      if (e === EMPTY) continue;
      const h = old[i + 1];
      let s = h & mask;
      while (slots[2 * s] !== EMPTY) s = (s + 1) & mask;
      slots[2 * s] = e;
      slots[2 * s + 1] = h;
    }
    this.slots = slots;
  }
}
