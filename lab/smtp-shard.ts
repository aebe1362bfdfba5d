// A child process of `lab up` serving one shard of a world's SMTP hosts: a listening socket costs a file
// descriptor, so a world with more hosts than one process may open (`ulimit -n` is per process) is served by
// several processes, each listening on every `count`-th host (lab/index.ts decides). The parent sends the
// world file, the port, the shard and its CA over IPC; the child appends its log to the same smtp-log.jsonl
// and stops when the parent disconnects or sends SIGTERM.
import { createWriteStream } from 'node:fs';
import { loadWorld } from './world.ts';
import { createLabCa, type CaMaterial } from './ca.ts';
import { startSmtpHosts, type SmtpHosts } from './smtp-server.ts';

export interface ShardStart {
  worldPath: string;
  port: number;
  shard: { index: number; count: number };
  /** The parent's CA, so every process presents the same certificates. */
  ca: CaMaterial;
  logFile: string;
  /** As LabOptions.maxSessions, for this process. */
  maxSessions?: number;
}

if (process.send) {
  process.once('message', async (msg: ShardStart) => {
    let smtp: SmtpHosts | undefined;
    const log = createWriteStream(msg.logFile, { flags: 'a' });
    log.on('error', () => {});
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      await smtp?.stop().catch(() => {});
      log.end(() => process.exit(0));
      setTimeout(() => process.exit(0), 2000).unref();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.once('disconnect', stop);
    try {
      const world = loadWorld(msg.worldPath);
      const ca = await createLabCa({ existing: msg.ca });
      smtp = await startSmtpHosts(world, {
        port: msg.port,
        ca,
        smtpRttMs: world.latency.smtpRttMs,
        shard: msg.shard,
        ...(msg.maxSessions !== undefined ? { maxSessions: msg.maxSessions } : {}),
        onLog: (e) => log.write(`${JSON.stringify(e)}\n`),
      });
      process.send!({ ready: true });
    } catch (err) {
      process.send!({ error: (err as Error).message });
      await stop();
    }
  });
}
