// Which column holds what: the header names people actually write (English and Japanese, any case), or a
// header-less file whose single column is domains.
import { normalizeDomain } from './normalize.ts';

export type Field = 'domain' | 'email' | 'url' | 'organization' | 'industry' | 'tags' | 'selectors';

// Compared after NFKC (full-width letters become ASCII), lower-casing and removing spaces, "_" and "-".
const NAMES: Record<Field, string[]> = {
  domain: ['domain', 'domains', 'domainname', 'maildomain', 'ドメイン', 'ドメイン名', 'メールドメイン'],
  email: ['email', 'mail', 'emailaddress', 'mailaddress', 'address', 'メール', 'メールアドレス', 'eメール', 'eメールアドレス', '電子メール', '電子メールアドレス', 'アドレス'],
  url: ['url', 'urls', 'website', 'web', 'site', 'homepage', 'hp', 'ホームページ', 'サイト', 'webサイト', 'ウェブサイト'],
  organization: ['organization', 'organisation', 'org', 'organizationname', 'organisationname', 'company', 'companyname', '組織', '組織名', '会社', '会社名', '企業', '企業名', '団体名', '法人名', '社名'],
  industry: ['industry', 'sector', '業種', '業界', '業種名'],
  tags: ['tags', 'tag', 'labels', 'label', 'タグ'],
  // DKIM selectors of the domain (RFC 6376 §3.1), tried first by its scans.
  selectors: ['selectors', 'selector', 'dkimselectors', 'dkimselector', 'セレクタ', 'セレクター', 'dkimセレクタ'],
};

const LOOKUP = new Map<string, Field>();
for (const [field, names] of Object.entries(NAMES) as [Field, string[]][]) {
  for (const n of names) LOOKUP.set(n, field);
}

export function headerField(name: string): Field | undefined {
  return LOOKUP.get(name.normalize('NFKC').trim().toLowerCase().replace(/[\s_\-]/g, ''));
}

/** Column indexes of one layout. `domain` lists the candidate columns in priority order: domain, email, url. */
export interface Layout {
  headerless: boolean;
  /** The header as written (empty for a header-less file). */
  header: string[];
  domain: number[];
  organization?: number;
  industry?: number;
  tags?: number;
  selectors?: number;
}

export type LayoutResult = { ok: true; layout: Layout } | { ok: false; message: string };

/** Decides the layout from the first record of the file. */
export function detectLayout(first: string[]): LayoutResult {
  const fields = first.map((f) => f.replace(/^\ufeff/, '').trim());
  const found: Partial<Record<Field, number>> = {};
  fields.forEach((name, i) => {
    const f = headerField(name);
    if (f && found[f] === undefined) found[f] = i;
  });
  const domain = (['domain', 'email', 'url'] as const).flatMap((f) => (found[f] === undefined ? [] : [found[f]!]));
  if (domain.length > 0) {
    return {
      ok: true,
      layout: { headerless: false, header: fields, domain, organization: found.organization, industry: found.industry, tags: found.tags, selectors: found.selectors },
    };
  }
  // A header-less list: one column whose first value is already a domain (and no header name anywhere).
  const nonEmpty = fields.filter((f) => f !== '');
  if (Object.keys(found).length === 0 && fields.length >= 1 && nonEmpty.length === 1 && fields[0] !== '' && normalizeDomain(fields[0]).ok) {
    return { ok: true, layout: { headerless: true, header: [], domain: [0] } };
  }
  const shown = fields.map((f) => JSON.stringify(f.length > 40 ? `${f.slice(0, 40)}…` : f)).join(', ');
  return {
    ok: false,
    message:
      `no domain column: the header (line 1) has ${shown || 'no fields'}; ` +
      'name a column "domain" (or "email", "url", "ドメイン", "メールアドレス"), or give a header-less file with one domain per line',
  };
}
