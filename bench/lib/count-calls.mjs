// Preloaded into the processes the survey bench spawns (`node --import bench/lib/count-calls.mjs`): counts the
// Redis commands and the Postgres statements this process sends, and writes the counts to
// `$MAILCENSUS_BENCH_COUNTS_DIR/<pid>.json` every half second and at exit. Redis' INFO commandstats is
// server-wide (the Redis is shared with other sessions) and counts the commands a Lua script runs inside
// Redis as well; these are the round trips our own processes make, exactly, by command (EVALSHA by script).
// Postgres has no per-statement counter without pg_stat_statements (not preloaded on the shared server), so
// statements are counted on the wire: every Sync ('S') or simple Query ('Q') message of the frontend
// protocol (PostgreSQL protocol §55.2.3: one Sync ends each extended-protocol statement) is one round trip.
// Plain JS, so it loads before tsx is registered.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';

const dir = process.env.MAILCENSUS_BENCH_COUNTS_DIR;
if (dir) {
  mkdirSync(dir, { recursive: true });
  const redis = {};
  let pgStatements = 0;
  const scripts = new Map();

  const defineCommand = Redis.prototype.defineCommand;
  Redis.prototype.defineCommand = function (name, definition) {
    if (definition?.lua) scripts.set(createHash('sha1').update(definition.lua).digest('hex'), name);
    return defineCommand.call(this, name, definition);
  };
  const sendCommand = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (command, ...rest) {
    let name = String(command?.name ?? '?').toLowerCase();
    if (name === 'evalsha') {
      // The script, and for BullMQ's the queue its first key is under (`<prefix>:<queue>:…`).
      const script = String(scripts.get(String(command.args?.[0])) ?? '?').replace(/:\d+\.\d+\.\d+$/, '');
      const queue = /^[^:]+:(domains|probes|control):/.exec(String(command.args?.[2] ?? ''))?.[1];
      name = `evalsha:${script}${queue ? `@${queue}` : ''}`;
    }
    redis[name] = (redis[name] ?? 0) + 1;
    return sendCommand.call(this, command, ...rest);
  };

  const pgPort = Number(new URL(process.env.DATABASE_URL || 'postgres://127.0.0.1:5432/').port || 5432);
  const state = new WeakMap();
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function (chunk, ...rest) {
    if (this.remotePort === pgPort && Buffer.isBuffer(chunk)) count(this, chunk);
    return write.call(this, chunk, ...rest);
  };
  /** Walks the frontend messages of one connection, across writes (a message may span two). */
  function count(socket, chunk) {
    let s = state.get(socket);
    if (!s) state.set(socket, (s = { untyped: true, skip: 0, head: Buffer.alloc(0) }));
    let buf = chunk;
    while (buf.length > 0) {
      if (s.skip > 0) {
        const n = Math.min(s.skip, buf.length);
        s.skip -= n;
        buf = buf.subarray(n);
        continue;
      }
      const need = s.untyped ? 8 : 5;
      const head = Buffer.concat([s.head, buf.subarray(0, need - s.head.length)]);
      buf = buf.subarray(need - s.head.length);
      if (head.length < need) {
        s.head = head;
        return;
      }
      s.head = Buffer.alloc(0);
      if (s.untyped) {
        // StartupMessage or SSLRequest (80877103, answered by one byte, then the StartupMessage).
        s.skip = head.readInt32BE(0) - 8;
        if (head.readInt32BE(4) !== 80877103) s.untyped = false;
      } else {
        const type = String.fromCharCode(head[0]);
        if (type === 'S' || type === 'Q') pgStatements++;
        s.skip = head.readInt32BE(1) - 4;
      }
    }
  }

  const file = path.join(dir, `${process.pid}.json`);
  const flush = () => {
    try {
      writeFileSync(file, JSON.stringify({ redis, pgStatements }));
    } catch {
      // the bench removed its directory: nothing to report to
    }
  };
  setInterval(flush, 500).unref();
  process.on('exit', flush);
}
