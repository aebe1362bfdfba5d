// Reads a lab world file (../shared/LAB-WORLD.md, versions 1 and 2) into the normalized model of lab/model.ts: the
// file is validated against lab/world.schema.json (every error, with its JSON path), then every default is
// applied, populations are expanded, inline hosts get ids, names and addresses, and names go to A-label form.
// Everything is linear in the size of the world: benchmark worlds have 50,000 domains.
import { readFileSync } from 'node:fs';
import { domainToASCII } from 'node:url';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { InputError } from '../lib/errors.ts';
import type { LabDkimKeySpec, LabDomain, LabHost, LabMtaStsPolicy, LabRecord, LabSender, LabWorld } from './model.ts';

const require = createRequire(import.meta.url);

/** The address a `ptrMismatch` PTR name resolves to instead: inside the reserved 127.0.0.0/16, never a host. */
export const MISMATCH_ADDRESS = '127.0.255.254';
/** First address handed to hosts without an `ip` (127.0.0.0/16 is reserved for the lab's own services). */
export const FIRST_ALLOCATED = '127.100.0.1';
export const DEFAULT_DNSBLS = ['bl.lab.test'];
/** How many error lines one InputError lists before summarizing the rest. */
const MAX_LISTED_ERRORS = 100;

let validator: ValidateFunction | undefined;
function validate(): ValidateFunction {
  if (validator) return validator;
  const addFormats = require('ajv-formats') as (ajv: Ajv2020, formats?: string[]) => Ajv2020;
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
  addFormats(ajv, ['date-time', 'ipv4']);
  validator = ajv.compile(require('./world.schema.json'));
  return validator;
}

interface Problem {
  path: string;
  message: string;
}

/** JSON Pointer (`/domains/0/mx/1`) to a JSONPath-like string (`$.domains[0].mx[1]`). */
function jsonPath(pointer: string, extra?: string): string {
  let out = '$';
  const parts = pointer === '' ? [] : pointer.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  for (const p of parts) {
    if (/^\d+$/.test(p)) out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(p)) out += `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

function schemaProblems(errors: ErrorObject[]): Problem[] {
  const out: Problem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // if/then/else only routes to the branch that applies; its own "must match then schema" is noise.
    if (e.keyword === 'if') continue;
    let p: Problem;
    const params = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'additionalProperties':
        p = { path: jsonPath(e.instancePath, String(params.additionalProperty)), message: 'unknown field' };
        break;
      case 'unevaluatedProperties':
        p = { path: jsonPath(e.instancePath, String(params.unevaluatedProperty)), message: 'unknown field' };
        break;
      case 'required':
        p = { path: jsonPath(e.instancePath, String(params.missingProperty)), message: 'is required' };
        break;
      case 'enum':
        p = {
          path: jsonPath(e.instancePath),
          message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
        };
        break;
      case 'const':
        p = { path: jsonPath(e.instancePath), message: `must be ${JSON.stringify(params.allowedValue)}` };
        if (/\/mx$/.test(e.instancePath)) p.message = 'must be a list of hosts, or "null" for a null MX';
        break;
      case 'propertyNames':
        p = { path: jsonPath(e.instancePath, String(params.propertyName)), message: 'is not a valid host id (letters, digits, _ . -; at most 63)' };
        break;
      case 'pattern':
        // propertyNames reports its inner pattern error too; the propertyNames one names the bad key.
        if (e.schemaPath.includes('/propertyNames/')) continue;
        p = {
          path: jsonPath(e.instancePath),
          message: /^\/populations\/\d+\/name$/.test(e.instancePath)
            ? 'must contain {i}'
            : /^\/records\/\d+\/name$/.test(e.instancePath) ? 'must be a DNS name, optionally starting with "*."'
            : /\/mailFrom$/.test(e.instancePath) ? 'must be an address local@domain' : e.message ?? 'bad pattern',
        };
        break;
      case 'type':
        p = { path: jsonPath(e.instancePath), message: e.message ?? 'wrong type' };
        if (/\/mx\/\d+$|\/sender\/host$/.test(e.instancePath)) p.message = 'must be a host id or an inline host object';
        else if (/\/sender$/.test(e.instancePath)) p.message = 'must be null or a sender object';
        break;
      default:
        p = { path: jsonPath(e.instancePath), message: e.message ?? e.keyword };
    }
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return out;
}

function fail(source: string, problems: Problem[]): never {
  const n = problems.length;
  const lines = problems.slice(0, MAX_LISTED_ERRORS).map((p) => `  ${p.path}: ${p.message}`);
  if (n > MAX_LISTED_ERRORS) lines.push(`  … and ${n - MAX_LISTED_ERRORS} more`);
  throw new InputError(`invalid lab world ${source}: ${n} error${n === 1 ? '' : 's'}\n${lines.join('\n')}`);
}

/** Lower-case A-label form of a DNS name, or null if it cannot be one. */
export function toALabel(name: string): string | null {
  const n = name.trim().replace(/\.$/, '');
  // Fast path for plain LDH names (with `_`, which DKIM/SRV-style labels use and domainToASCII rejects).
  if (/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(n)) {
    return n.split('.').every((l) => l.length <= 63) ? n.toLowerCase() : null;
  }
  const a = domainToASCII(n);
  if (a === '' || a.length > 253 || !a.split('.').every((l) => l.length > 0 && l.length <= 63)) return null;
  return a.toLowerCase();
}

export function ipToNumber(ip: string): number {
  const o = ip.split('.').map(Number);
  return ((o[0] << 24) >>> 0) + (o[1] << 16) + (o[2] << 8) + o[3];
}

export function numberToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

type RawHost = {
  ip?: string;
  name?: string;
  ptr?: string | null;
  ptrMismatch?: boolean;
  smtp?: {
    behavior?: LabHost['smtp']['behavior'];
    bannerDelayMs?: number;
    starttls?: boolean;
    tls?: {
      cert?: LabHost['smtp']['tls']['cert'];
      minVersion?: LabHost['smtp']['tls']['minVersion'];
      key?: LabHost['smtp']['tls']['key'];
      notAfterDays?: number;
      chain?: LabHost['smtp']['tls']['chain'];
    };
    openRelay?: boolean;
    relayDenyCode?: 550 | 554 | 530;
  };
  dnsbl?: boolean | 'error';
  tlsa?: Array<{ usage: 0 | 1 | 2 | 3; selector: 0 | 1; matching: 0 | 1 | 2; matches?: boolean }>;
  dnssec?: 'secure' | 'insecure' | 'bogus';
  latency?: { dnsMs?: number; smtpRttMs?: number };
};
type RawSender = { host?: string | RawHost; starttls?: boolean; dkimSign?: string | null; mailFrom?: string };
type RawDomain = {
  name?: string;
  mx?: Array<string | RawHost> | 'null';
  spf?: string | null;
  extraTxt?: string[];
  dkim?: { selectors: string[]; keys?: Record<string, Partial<LabDkimKeySpec>> } | null;
  dmarc?: string | null;
  mtaSts?: string | null;
  mtaStsPolicy?: { https?: LabMtaStsPolicy['https']; body?: string; contentType?: string } | null;
  tlsRpt?: string | null;
  dnssec?: LabDomain['dnssec'];
  dnsFault?: LabDomain['dnsFault'];
  sender?: RawSender | null;
  latency?: { dnsMs?: number };
};
type RawWorld = {
  version: 1 | 2;
  records?: Array<{ name: string; type: LabRecord['type']; value: string }>;
  name: string;
  observedAt?: string;
  latency?: { dnsMs?: number; smtpRttMs?: number };
  dnsbls?: string[];
  hosts?: Record<string, RawHost>;
  domains?: RawDomain[];
  populations?: Array<{ count: number; name: string; template: RawDomain }>;
};

const RESERVED_LOW = ipToNumber('127.0.0.0');
const RESERVED_HIGH = ipToNumber('127.0.255.255');
const LOOPBACK_HIGH = ipToNumber('127.255.255.255');

/**
 * Loads, validates and normalizes a lab world.
 * @param input a path to a JSON world file, or the parsed world object
 * @throws InputError listing every problem, one per line, each with its JSON path
 */
export function loadWorld(input: string | object): LabWorld {
  let raw: unknown = input;
  const source = typeof input === 'string' ? input : '(object)';
  if (typeof input === 'string') {
    let text: string;
    try {
      text = readFileSync(input, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new InputError(`cannot read lab world ${input}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new InputError(`invalid lab world ${input}: not JSON: ${(err as Error).message}`);
    }
  }
  const v = validate();
  if (!v(raw)) fail(source, schemaProblems(v.errors ?? []));
  return normalize(raw as RawWorld, source);
}

function normalize(w: RawWorld, source: string): LabWorld {
  const problems: Problem[] = [];
  const hosts = new Map<string, LabHost>();
  const domains: LabDomain[] = [];
  const ipOwner = new Map<number, string>(); // explicit addresses -> JSON path of the host that took it
  const unallocated: LabHost[] = [];
  const domainPath = new Map<string, string>();
  const policyHosts: LabMtaStsPolicy[] = [];

  const name = (n: string, path: string): string => {
    const a = toALabel(n);
    if (a === null) {
      problems.push({ path, message: `"${n}" is not a valid DNS name` });
      return n.toLowerCase();
    }
    return a;
  };

  // A v2 field in a version-1 world is an error, not silently honoured: the file claims a format that lacks it.
  const v2 = (present: boolean, path: string) => {
    if (present && w.version === 1) problems.push({ path, message: 'is a version 2 field: set "version": 2 to use it' });
  };

  const makeHost = (r: RawHost, id: string, defaultName: string, path: string): LabHost => {
    v2(r.tlsa !== undefined, `${path}.tlsa`);
    v2(r.dnssec !== undefined, `${path}.dnssec`);
    v2(r.latency !== undefined, `${path}.latency`);
    for (const f of ['key', 'notAfterDays', 'chain'] as const) v2(r.smtp?.tls?.[f] !== undefined, `${path}.smtp.tls.${f}`);
    const hostName = r.name !== undefined ? name(r.name, `${path}.name`) : defaultName;
    let ip = '';
    if (r.ip !== undefined) {
      const n = ipToNumber(r.ip);
      if (r.ip.split('.')[0] !== '127' || n > LOOPBACK_HIGH) {
        problems.push({ path: `${path}.ip`, message: `${r.ip} is outside 127.0.0.0/8: the lab lives on loopback` });
      } else if (n >= RESERVED_LOW && n <= RESERVED_HIGH) {
        problems.push({ path: `${path}.ip`, message: `${r.ip} is inside 127.0.0.0/16, reserved for the lab's own services` });
      } else if (ipOwner.has(n)) {
        problems.push({ path: `${path}.ip`, message: `duplicate ip ${r.ip} (also at ${ipOwner.get(n)})` });
      } else {
        ipOwner.set(n, path);
      }
      ip = r.ip;
    }
    const smtp = r.smtp ?? {};
    const host: LabHost = {
      id,
      ip,
      name: hostName,
      ptr: r.ptr === null ? null : r.ptr !== undefined ? name(r.ptr, `${path}.ptr`) : hostName,
      ptrMismatch: r.ptrMismatch ?? false,
      smtp: {
        behavior: smtp.behavior ?? 'normal',
        bannerDelayMs: smtp.bannerDelayMs ?? 0,
        starttls: smtp.starttls ?? true,
        tls: {
          cert: smtp.tls?.cert ?? 'valid',
          minVersion: smtp.tls?.minVersion ?? 'TLSv1.2',
          key: smtp.tls?.key ?? 'rsa-2048',
          notAfterDays: smtp.tls?.notAfterDays ?? null,
          chain: smtp.tls?.chain ?? 'complete',
        },
        openRelay: smtp.openRelay ?? false,
        relayDenyCode: smtp.relayDenyCode ?? 550,
      },
      dnsbl: r.dnsbl ?? false,
      tlsa: (r.tlsa ?? []).map((t) => ({ usage: t.usage, selector: t.selector, matching: t.matching, matches: t.matches ?? true })),
      dnssec: r.dnssec ?? null,
    };
    // Extension: set only when given, so a world without it loads exactly as before.
    if (r.latency !== undefined) host.latency = { dnsMs: r.latency.dnsMs ?? null, smtpRttMs: r.latency.smtpRttMs ?? null };
    // The forward name must keep reaching the host, so a mismatching PTR cannot name it: publish the PTR under
    // a name of its own, whose A record points elsewhere (see docs/lab.md).
    if (host.ptrMismatch && host.ptr === host.name) host.ptr = `rdns-mismatch.${host.name}`;
    if (!ip) unallocated.push(host);
    hosts.set(id, host);
    return host;
  };

  for (const [id, r] of Object.entries(w.hosts ?? {})) {
    makeHost(r, id, `${id.toLowerCase()}.hosts.lab.test`, jsonPath('', 'hosts') + jsonPath('', id).slice(1));
  }
  const sharedIds = new Set(hosts.keys());

  const addDomain = (d: RawDomain, displayName: string, path: string, namePath: string) => {
    const dn = name(displayName, namePath);
    const prev = domainPath.get(dn);
    if (prev !== undefined) {
      problems.push({ path: namePath, message: `duplicate domain ${dn} (also at ${prev})` });
      return;
    }
    domainPath.set(dn, namePath);
    let mx: string[] | 'null';
    if (d.mx === 'null') mx = 'null';
    else {
      mx = [];
      const list = d.mx ?? [];
      for (let k = 0; k < list.length; k++) {
        const m = list[k];
        if (typeof m === 'string') {
          if (!sharedIds.has(m)) problems.push({ path: `${path}.mx[${k}]`, message: `unknown host id "${m}"` });
          mx.push(m);
        } else {
          mx.push(makeHost(m, `${dn}#mx${k + 1}`, `mx${k + 1}.${dn}`, `${path}.mx[${k}]`).id);
        }
      }
    }
    let sender: LabSender | null = null;
    if (d.sender) {
      const s = d.sender;
      const h = s.host ?? 'mx';
      let hostId: string;
      if (h === 'mx') {
        if (mx === 'null' || mx.length === 0) {
          problems.push({ path: `${path}.sender.host`, message: `is "mx" but ${dn} has no MX host` });
        }
        hostId = mx === 'null' ? '' : mx[0] ?? '';
      } else if (typeof h === 'string') {
        if (!sharedIds.has(h)) problems.push({ path: `${path}.sender.host`, message: `unknown host id "${h}"` });
        hostId = h;
      } else {
        hostId = makeHost(h, `${dn}#out`, `out.${dn}`, `${path}.sender.host`).id;
      }
      let mailFrom = `postmaster@${dn}`;
      if (s.mailFrom !== undefined) {
        const at = s.mailFrom.lastIndexOf('@');
        mailFrom = `${s.mailFrom.slice(0, at)}@${name(s.mailFrom.slice(at + 1), `${path}.sender.mailFrom`)}`;
      }
      sender = { hostId, starttls: s.starttls ?? true, dkimSign: s.dkimSign ?? null, mailFrom };
    }
    v2(d.latency !== undefined, `${path}.latency`);
    let dkim: LabDomain['dkim'] = null;
    if (d.dkim) {
      v2(d.dkim.keys !== undefined, `${path}.dkim.keys`);
      const selectors = d.dkim.selectors.map((s) => s.toLowerCase());
      const keys: Record<string, LabDkimKeySpec> = {};
      const given = new Map(Object.entries(d.dkim.keys ?? {}).map(([k, v]) => [k.toLowerCase(), { k, v }]));
      for (const [lower, { k }] of given) {
        if (!selectors.includes(lower)) problems.push({ path: `${path}.dkim.keys${jsonPath('', k).slice(1)}`, message: `selector "${k}" is not in dkim.selectors` });
      }
      for (const sel of selectors) {
        const spec = given.get(sel)?.v ?? {};
        const type = spec.type ?? 'rsa';
        keys[sel] = { type, bits: type === 'rsa' ? spec.bits ?? 2048 : 0, testing: spec.testing ?? false, revoked: spec.revoked ?? false };
        if (type === 'ed25519' && spec.bits !== undefined) {
          problems.push({ path: `${path}.dkim.keys${jsonPath('', given.get(sel)!.k).slice(1)}.bits`, message: 'applies to rsa keys only' });
        }
      }
      dkim = { selectors, keys };
    }
    let mtaStsPolicy: LabMtaStsPolicy | null = null;
    if (d.mtaStsPolicy) {
      v2(true, `${path}.mtaStsPolicy`);
      const p = d.mtaStsPolicy;
      const mxNames = mx === 'null' ? [] : mx.map((id) => hosts.get(id)?.name).filter((x): x is string => x !== undefined);
      mtaStsPolicy = {
        https: p.https ?? 'ok',
        // Default: a valid enforce policy naming every MX host (RFC 8461 §3.2), so `https` alone is a usable world.
        body: p.body ?? `version: STSv1\r\nmode: enforce\r\n${mxNames.map((n) => `mx: ${n}\r\n`).join('')}max_age: 604800\r\n`,
        contentType: p.contentType ?? 'text/plain',
        name: `mta-sts.${dn}`,
        ip: '',
      };
      policyHosts.push(mtaStsPolicy);
    }
    domains.push({
      name: dn,
      displayName,
      mx,
      spf: d.spf ?? null,
      extraTxt: d.extraTxt ?? [],
      dkim,
      dmarc: d.dmarc ?? null,
      mtaSts: d.mtaSts ?? null,
      mtaStsPolicy,
      tlsRpt: d.tlsRpt ?? null,
      dnssec: d.dnssec ?? 'insecure',
      dnsFault: d.dnsFault ?? null,
      sender,
      ...(d.latency !== undefined ? { latency: { dnsMs: d.latency.dnsMs ?? null } } : {}),
    });
  };

  (w.domains ?? []).forEach((d, i) => addDomain(d, d.name as string, `$.domains[${i}]`, `$.domains[${i}].name`));
  (w.populations ?? []).forEach((p, j) => {
    const path = `$.populations[${j}]`;
    // An explicit address in a template would be shared by every generated domain.
    const explicit = [...(Array.isArray(p.template.mx) ? p.template.mx : []), p.template.sender?.host]
      .some((h) => typeof h === 'object' && h !== null && h.ip !== undefined);
    if (explicit && p.count > 1) {
      problems.push({ path: `${path}.template`, message: `an inline host with a fixed ip would be shared by all ${p.count} generated domains; drop its ip or use a shared host` });
      return;
    }
    const before = problems.length;
    for (let i = 1; i <= p.count; i++) {
      addDomain(p.template, p.name.replaceAll('{i}', String(i)), `${path}.template`, `${path}.name`);
      // One bad template fails every generated domain the same way: report it once.
      if (problems.length > before) break;
    }
  });

  const records = normalizeRecords(w, problems, hosts, domainPath);

  // Addresses for hosts without one, after every explicit address is known; then the MTA-STS policy hosts.
  let next = ipToNumber(FIRST_ALLOCATED);
  for (const h of [...unallocated, ...policyHosts] as Array<{ ip: string; id?: string; name: string }>) {
    while (ipOwner.has(next) || (next & 255) === 0 || (next & 255) === 255) next++;
    if (next >= LOOPBACK_HIGH) {
      problems.push({ path: '$', message: 'more hosts than free addresses in 127.100.0.0-127.255.255.254' });
      break;
    }
    h.ip = numberToIp(next);
    ipOwner.set(next, h.id ?? h.name);
    next++;
  }

  const dnsbls = (w.dnsbls ?? DEFAULT_DNSBLS).map((z, i) => name(z, `$.dnsbls[${i}]`));
  if (problems.length > 0) fail(source, problems);
  return {
    version: w.version,
    name: w.name,
    observedAt: w.observedAt ?? null,
    latency: { dnsMs: w.latency?.dnsMs ?? 0, smtpRttMs: w.latency?.smtpRttMs ?? 0 },
    dnsbls,
    hosts,
    domains,
    records,
  };
}

/** A DNS name of `records`: A-label form, keeping a leading `*.` (RFC 4592 §2.1.1: `*` only as the whole leftmost label). */
function recordName(n: string): string | null {
  const wild = n.startsWith('*.');
  const rest = wild ? n.slice(2) : n;
  if (rest.includes('*')) return null;
  const a = toALabel(rest);
  return a === null ? null : wild ? `*.${a}` : a;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Checks and normalizes top-level `records` (v2); values are kept verbatim, names go to A-label form. */
function normalizeRecords(w: RawWorld, problems: Problem[], hosts: Map<string, LabHost>, domainPath: Map<string, string>): LabRecord[] {
  if (w.records === undefined) return [];
  if (w.version === 1) {
    problems.push({ path: '$.records', message: 'is a version 2 field: set "version": 2 to use it' });
    return [];
  }
  const out: LabRecord[] = [];
  const byName = new Map<string, Array<{ type: string; path: string }>>();
  w.records.forEach((r, i) => {
    const path = `$.records[${i}]`;
    const name = recordName(r.name);
    if (name === null) {
      problems.push({ path: `${path}.name`, message: `"${r.name}" is not a valid DNS name (a wildcard is "*." followed by a name)` });
      return;
    }
    let value = r.value;
    let bad: string | null = null;
    switch (r.type) {
      case 'A':
        if (!IPV4.test(value)) bad = 'must be an IPv4 address';
        break;
      case 'CNAME': {
        const t = toALabel(value);
        if (t === null) bad = 'must be a DNS name';
        else value = t;
        break;
      }
      case 'MX': {
        const m = /^(\d{1,5})\s+(\S+)$/.exec(value.trim());
        const ex = m ? (m[2] === '.' ? '.' : toALabel(m[2])) : null;
        if (!m || Number(m[1]) > 65535 || ex === null) bad = 'must be "<preference 0-65535> <exchange>", e.g. "10 mx.example.test"';
        else value = `${Number(m[1])} ${ex}`;
        break;
      }
      case 'TLSA': {
        // RFC 6698 §2.2: usage, selector, matching type (each 0-255) and the association data in hex.
        const m = /^(\d{1,3})\s+(\d{1,3})\s+(\d{1,3})\s+([0-9A-Fa-f]+)$/.exec(value.trim());
        if (!m || [m[1], m[2], m[3]].some((x) => Number(x) > 255) || m[4].length % 2 !== 0) {
          bad = 'must be "<usage> <selector> <matching> <hex data>", e.g. "3 1 1 ab12…"';
        } else value = `${Number(m[1])} ${Number(m[2])} ${Number(m[3])} ${m[4].toLowerCase()}`;
        break;
      }
      default:
        break; // TXT: verbatim
    }
    if (bad !== null) {
      problems.push({ path: `${path}.value`, message: bad });
      return;
    }
    const list = byName.get(name) ?? [];
    // RFC 1034 §3.6.2 / RFC 2181 §10.1: a name with a CNAME has no other data.
    const clash = list.find((o) => o.type === 'CNAME' || r.type === 'CNAME');
    if (clash) problems.push({ path: `${path}.name`, message: `a CNAME cannot share its name with other records (${name}, also at ${clash.path})` });
    list.push({ type: r.type, path });
    byName.set(name, list);
    out.push({ name, type: r.type, value });
  });
  const hostNames = new Set([...hosts.values()].flatMap((h) => [h.name, h.ptr ?? h.name]));
  for (const [name, list] of byName) {
    const cname = list.find((o) => o.type === 'CNAME');
    if (!cname) continue;
    if (domainPath.has(name)) problems.push({ path: `${cname.path}.name`, message: `${name} is a domain of the world: its apex has SOA and NS, so it cannot be a CNAME` });
    else if (hostNames.has(name)) problems.push({ path: `${cname.path}.name`, message: `${name} is a host name (it has an A record), so it cannot be a CNAME` });
  }
  return out;
}

/** Every host an SMTP server must run for: shared hosts and inline ones, in creation order. */
export function hostList(world: LabWorld): LabHost[] {
  return [...world.hosts.values()];
}
