// The *ForFile helpers (lab.ts, db.ts, web.ts) start what every test of a file shares in a `before` hook and hand
// it out through getters; this is their getters' guard.

/** `x`, once the `before` hook has set it; read earlier (at a file's top level, say), an error naming `what`. */
export function startedInBefore<T>(x: T | undefined, what: string): T {
  if (x === undefined) throw new Error(`${what} starts in a before hook: use it inside tests`);
  return x;
}
