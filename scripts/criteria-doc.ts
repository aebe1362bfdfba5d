// docs/criteria.md, written from the check registry so it cannot drift from the code: every criterion and
// finding, its rule, its values and every reason code with its labels and whether it is transient.
// `npm run docs:criteria` rewrites the file; test/criteria-doc.test.ts fails when it is out of date.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CHECKS, CRITERION_CHECKS, FINDING_CHECKS, RULES_VERSION } from '../lib/checks/registry.ts';
import type { Check, ReasonMeta } from '../lib/checks/contract.ts';
import { VERDICT_LABELS, LEVELS } from '../lib/verdict.ts';

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function reasonsTable(c: Check): string {
  const rows = Object.entries(c.reasons as Record<string, ReasonMeta>).map(
    ([code, m]) => `| \`${code}\` | ${m.transient ? 'yes' : ''} | ${cell(m.en)} | ${cell(m.ja)} |`,
  );
  return ['| reason | transient | meaning | 意味 |', '|---|---|---|---|', ...rows].join('\n');
}

function section(c: Check): string {
  const head = `### \`${c.id}\` — ${c.label.en}（${c.label.ja}）`;
  const facts = [
    `- Rule: ${c.rule}`,
    c.kind === 'criterion' ? `- An NG proves: **${c.level}** (${VERDICT_LABELS[c.level].en} / ${VERDICT_LABELS[c.level].ja})${c.id === 'spf' || c.id === 'dkim' ? ', together with the other of SPF/DKIM only' : ''}` : null,
    `- Scope: ${c.scope}; sources: ${c.sources.join(', ')}`,
    c.kind === 'finding'
      ? `- Values: ${c.values.length ? c.values.map((v) => `\`${v}\``).join(', ') : '(as observed)'}${c.multi ? ` — multi-valued${c.multi.empty ? `, \`${c.multi.empty}\` when none` : ''}${c.multi.any ? `, \`${c.multi.any}\` when any` : ''}` : ''}${c.reported === false ? '; shown by `check`, not counted in reports' : ''}`
      : null,
    c.kind === 'finding' && c.column ? `- Stored in \`diagnoses.findings.${c.id}\` and the column \`diagnoses.${c.column}\`` : c.kind === 'finding' ? `- Stored in \`diagnoses.findings.${c.id}\`` : `- Stored in the columns \`diagnoses.${c.id}\` and \`${c.id}_reason\``,
    c.gather ? `- Gathers its own observations: \`dns.${c.gather.key}\`` : null,
  ].filter(Boolean);
  return `${head}\n\n${facts.join('\n')}\n\n${reasonsTable(c)}\n`;
}

export function renderCriteriaDoc(): string {
  return `<!-- Generated from lib/checks/registry.ts by \`npm run docs:criteria\`; test/criteria-doc.test.ts checks it. Do not edit by hand. -->
# The criteria, findings and reason codes

mailcensus judges MSchecker's eight criteria and records findings beyond them. This page is written from the
check registry (\`lib/checks/registry.ts\`, rules version ${RULES_VERSION}), so it says exactly what the code does.

## Statuses and the verdict

- Every criterion is \`ok\`, \`ng\`, \`unknown\` (could not be measured: never NG) or \`na\` (does not apply, e.g.
  receive TLS of a domain with a null MX).
- The verdict is the worst level the NG criteria prove, worst first: ${LEVELS.map((l) => `${VERDICT_LABELS[l].en} (${VERDICT_LABELS[l].ja})`).join(', ')}.
  SPF and DKIM prove *needs improvement* only when both are NG.
- It is **incomplete** (${VERDICT_LABELS.incomplete.ja}) when an \`unknown\` criterion could still prove a worse level than the
  NGs do (for SPF/DKIM: one is unknown and the other is not OK).
- A scan ignores \`tls_send\`: only a received test mail shows how a domain sends.
- An unknown whose reason is marked *transient* below is retried (spaced out) before it is final.

## Criteria

| criterion | label | an NG proves | sources |
|---|---|---|---|
${CRITERION_CHECKS.map((c) => `| \`${c.id}\` | ${c.label.en} / ${c.label.ja} | ${c.level} | ${c.sources.join(', ')} |`).join('\n')}

${CRITERION_CHECKS.map(section).join('\n')}
## Findings beyond MSchecker

They never change the verdict. Reports count each by value, with its denominator (the domains counted).

| finding | label | values |
|---|---|---|
${FINDING_CHECKS.map((c) => `| \`${c.id}\` | ${c.label.en} / ${c.label.ja} | ${c.values.map((v) => `\`${v}\``).join(', ') || '(as observed)'} |`).join('\n')}

${FINDING_CHECKS.map(section).join('\n')}
## How to add a check

A check is one folder under \`lib/checks/<name>/\` and one line in \`lib/checks/registry.ts\`. Collection, judging
(scan and test mail), storage, re-judging, \`check\`, the web page, reports (JSON, HTML, CSV) and this page loop
over the registry. The worked example is the DKIM key finding, \`lib/checks/dkim-key/index.ts\` (git commit
"DKIM key strength (RFC 8301 §3.2), the worked example of a new finding"):

1. **Observations.** Decide what the check reads. \`dkim_key\` reads the keys the \`dkim\` gatherer already
   collects (scan) and the DNS answers mailauth used for a test mail (\`authDns\`), so it needs no I/O. A check
   that needs new I/O gives itself a \`gather: { key, retrieve(domain, deps, { cd }) }\`: it runs with the other
   domain gatherers, through the injected resolver only, and its observation is stored under \`dns.<key>\`.
2. **Reasons.** Declare every reason code the check can return, each with its English and Japanese label and
   whether an unknown with it is transient (\`reason(en, ja, transient)\`; shared DNS/SMTP failure codes are in
   \`lib/checks/reasons.ts\`). Returning an undeclared code throws, and the tests run every check on the lab.
3. **Evaluate.** Write \`judge(input)\`, pure, over \`JudgeInput\` (\`lib/checks/judge-input.ts\`: the domain's
   DNS observations, the MX set read once, every MX IP's SMTP session, the test mail). A finding returns a
   \`value\` from its \`values\` (with \`valueLabels\`); a criterion returns a status only.
4. **Register.** Wrap it with \`defineFinding\` (or \`defineCriterion\`) and add one line to \`CHECKS\`.
5. **Test and document.** A lab world that exercises every value and reason (\`test/check-dkim-key.test.ts\`
   runs \`mailcensus check\` on \`lab/worlds/test-v2.json\` and counts the finding in a report), then
   \`npm run docs:criteria\`.

Changing how an existing check judges is a new rules version: bump \`RULES_VERSION\` in
\`lib/checks/registry.ts\` and run \`mailcensus rejudge\` over the stored diagnoses.
`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = fileURLToPath(new URL('../docs/criteria.md', import.meta.url));
  writeFileSync(file, renderCriteriaDoc());
  process.stderr.write(`wrote ${file} (${CHECKS.length} checks)\n`);
}
