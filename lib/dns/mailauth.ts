// mailauth takes a resolver shaped like `dns.promises.resolve`: `(name, rrtype) => records`, throwing an
// error whose `code` says why. It treats ENOTFOUND/ENODATA as "absent" (an SPF void lookup, RFC 7208
// §4.6.4) and anything else as a temporary failure, so our outcomes map onto Node's codes exactly here.
import type { DNSResolver } from 'mailauth';
import type { DnsOutcome, MxData, QueryType, Resolver, SoaData } from './resolver.ts';

const CODE_OF: Record<Exclude<DnsOutcome, 'answer'>, string> = {
  nodata: 'ENODATA',
  nxdomain: 'ENOTFOUND',
  servfail: 'ESERVFAIL',
  refused: 'EREFUSED',
  timeout: 'ETIMEOUT',
  malformed: 'EBADRESP',
  error: 'ESERVFAIL',
};

export type MailauthResolver = (name: string, rrtype: string) => Promise<unknown[]>;

/**
 * mailauth's declared resolver type says TXT-shaped answers only (string[][] | string[]); at run time it also
 * reads MX objects and SOA records, which ours returns (mailauthResolver). The one place that type is narrowed.
 */
export function asDnsResolver(r: MailauthResolver): DNSResolver {
  return (name, rrtype) => r(name, rrtype) as Promise<string[][] | string[]>;
}

const SUPPORTED = new Set<QueryType>(['A', 'AAAA', 'MX', 'TXT', 'PTR', 'SOA', 'CNAME', 'NS']);

/**
 * Adapts our resolver to mailauth's: TXT → string[][] (the character-strings of each record), MX →
 * `{ exchange, priority }[]`, SOA → Node's `{ nsname, hostmaster, … }`, others → string[].
 * @param opts.cd query with CD (for a DNSSEC-bogus domain whose records are still read)
 */
export function mailauthResolver(resolver: Resolver, opts: { cd?: boolean } = {}): MailauthResolver {
  return async (name: string, rrtype: string) => {
    const type = String(rrtype).toUpperCase() as QueryType;
    if (!SUPPORTED.has(type)) {
      throw Object.assign(new Error(`unsupported record type ${rrtype}`), { code: 'ENOTIMP' });
    }
    const r = await resolver.query(name, type, { cd: opts.cd });
    if (r.outcome !== 'answer') {
      const code = CODE_OF[r.outcome];
      throw Object.assign(new Error(`${code} ${name} ${type}${r.reason ? ` (${r.reason})` : ''}`), { code, hostname: name });
    }
    switch (type) {
      case 'TXT':
        return r.answers.map((a) => a.data as string[]);
      case 'MX':
        return r.answers.map((a) => ({ exchange: (a.data as MxData).exchange, priority: (a.data as MxData).preference }));
      case 'SOA': {
        const s = r.answers[0].data as SoaData;
        return [{ nsname: s.mname, hostmaster: s.rname, serial: s.serial, refresh: s.refresh, retry: s.retry, expire: s.expire, minttl: s.minimum }];
      }
      default:
        return r.answers.map((a) => a.data as string);
    }
  };
}

/**
 * The same, for mailauth's SPF (and `authenticate`, which runs it): mailauth drops a non-void DNS failure inside
 * `include:` unless the error carries `spfResult`, which would turn an include's SERVFAIL into a silent
 * non-match; RFC 7208 §5.2 makes it a temperror. (DKIM maps such errors to temperror by itself.)
 */
export function mailauthSpfResolver(resolver: Resolver, opts: { cd?: boolean } = {}): MailauthResolver {
  const base = mailauthResolver(resolver, opts);
  return async (name: string, rrtype: string) => {
    try {
      return await base(name, rrtype);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'ENOTFOUND' && code !== 'ENODATA') {
        (err as { spfResult?: unknown }).spfResult = { error: 'temperror', text: (err as Error).message };
      }
      throw err;
    }
  };
}
