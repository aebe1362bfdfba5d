// Our receiver as the lab-backed tests run it, in the test process: mail for OUR_DOMAIN on an ephemeral port of
// 127.0.0.1, no sweeps, and 50 connections per IP at once (one lab host sends the mails of many domains).
import type { Db } from '../../lib/db.ts';
import { startReceiver, type Receiver, type ReceiverOptions } from '../../receiver/server.ts';

export const OUR_DOMAIN = 'mailcensus.lab.test';

/** `options` override the defaults; `enqueue` is the test's (an id recorder, or a real queue). */
export function startLabReceiver(db: Db, options: Partial<Omit<ReceiverOptions, 'db'>> = {}): Promise<Receiver> {
  return startReceiver({ db, domain: OUR_DOMAIN, port: 0, sweepIntervalMs: 0, maxConnectionsPerIp: 50, ...options });
}
