// The one outbound gate: every TCP connection mailcensus opens to a host it learned from DNS or from a sender
// (SMTP probes, the result mail, any later HTTPS fetch) goes through `connect` here. It applies, on the
// resolved address right before connecting, the address policy (address-policy.ts: lab mode loopback only,
// otherwise no special-purpose space) and the opt-out list (domains and IPs that asked not to be probed), and
// `run` applies the per-IP politeness (one gate per process, or the workers' Redis one shared by the fleet).
import net from 'node:net';
import { checkAddress, type AddressVerdict } from './address-policy.ts';
import type { IpGate } from '../probes/ip-gate.ts';

export type OutboundVerdict = AddressVerdict | { allowed: false; reason: 'opted_out'; range: string; purpose: string };

/** A refused connection: thrown by `connect` so no caller can connect around the policy by mistake. */
export class OutboundRefusedError extends Error {
  readonly code = 'EOUTBOUNDREFUSED';
  constructor(readonly ip: string, readonly verdict: Exclude<OutboundVerdict, { allowed: true }>) {
    super(`not connecting to ${ip}: ${verdict.reason} (${verdict.range}: ${verdict.purpose})`);
    this.name = 'OutboundRefusedError';
  }
}

export interface OutboundGate {
  readonly lab: boolean;
  /** May we connect to `ip` at all? Address policy first, then the opt-out list. */
  check(ip: string): OutboundVerdict;
  /** Is `domain` (or a parent of it) on the opt-out list? */
  domainOptedOut(domain: string): boolean;
  /** Runs `fn` in `ip`'s politeness slot (concurrency and spacing per IP). */
  run<T>(ip: string, fn: () => Promise<T>): Promise<T>;
  /** net.connect after the check; throws OutboundRefusedError (synchronously) when refused. `host` must be an IP. */
  connect(opts: { host: string; port: number }): net.Socket;
  /** `connect`, resolved once the TCP handshake completed; rejects on refusal, error or after `timeoutMs`. */
  open(ip: string, port: number, timeoutMs: number): Promise<net.Socket>;
}

export interface OutboundGateOptions {
  lab: boolean;
  /** Domains (with their subdomains) and IP addresses never contacted. */
  optOut?: readonly string[];
  /** Per-IP politeness; absent: none (only for tests and one-shot tools that pass their own). */
  politeness?: Pick<IpGate, 'run'>;
  /** The raw connector, for tests that count connections. @defaultValue net.connect */
  rawConnect?: (opts: { host: string; port: number }) => net.Socket;
}

/** The canonical text of an IP for opt-out comparison (`::FFFF:1.2.3.4` and `1.2.3.4` are one host). */
function canonicalIp(ip: string): string {
  const a = ip.trim().replace(/%.*$/, '').toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1] : a;
}

export function createOutboundGate(opts: OutboundGateOptions): OutboundGate {
  const optOutIps = new Set<string>();
  const optOutDomains: string[] = [];
  for (const raw of opts.optOut ?? []) {
    const e = raw.trim().toLowerCase().replace(/\.$/, '');
    if (!e) continue;
    if (net.isIP(e)) optOutIps.add(canonicalIp(e));
    else optOutDomains.push(e);
  }
  const rawConnect = opts.rawConnect ?? ((o: { host: string; port: number }) => net.connect(o));
  const politeness = opts.politeness ?? { run: <T>(_ip: string, fn: () => Promise<T>) => fn() };

  const check = (ip: string): OutboundVerdict => {
    const policy = checkAddress(ip, { lab: opts.lab });
    if (!policy.allowed) return policy;
    if (optOutIps.has(canonicalIp(ip))) return { allowed: false, reason: 'opted_out', range: canonicalIp(ip), purpose: 'on the opt-out list' };
    return policy;
  };

  const connect = (o: { host: string; port: number }): net.Socket => {
    // Checked here, on the literal address the socket will use: nothing between the check and the connect
    // can resolve a name again (no DNS rebinding window).
    const v = check(o.host);
    if (!v.allowed) throw new OutboundRefusedError(o.host, v);
    return rawConnect({ host: o.host, port: o.port });
  };

  return {
    lab: opts.lab,
    check,
    domainOptedOut(domain: string): boolean {
      const d = domain.toLowerCase().replace(/\.$/, '');
      return optOutDomains.some((o) => d === o || d.endsWith(`.${o}`));
    },
    run: (ip, fn) => politeness.run(ip, fn),
    connect,
    open(ip, port, timeoutMs) {
      return new Promise((resolve, reject) => {
        let socket: net.Socket;
        try {
          socket = connect({ host: ip, port });
        } catch (err) {
          reject(err);
          return;
        }
        const timer = setTimeout(() => {
          socket.destroy();
          reject(Object.assign(new Error(`connect to ${ip} port ${port} timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
        }, timeoutMs);
        socket.once('connect', () => {
          clearTimeout(timer);
          socket.removeAllListeners('error');
          socket.on('error', () => {});
          resolve(socket);
        });
        socket.once('error', (err) => {
          clearTimeout(timer);
          socket.destroy();
          reject(err);
        });
      });
    },
  };
}
