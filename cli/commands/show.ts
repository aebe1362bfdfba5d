// `mailcensus show DIAGNOSIS-ID`: one stored diagnosis (test mail or scan), every criterion with its reason,
// in Japanese or English, or as JSON.
import type { Command } from 'commander';
import { action, langOption, withDatabase } from '../run.ts';

export function register(program: Command): void {
  program
    .command('show')
    .description('show one diagnosis: verdict and every criterion with its reason')
    .argument('<diagnosis-id>', 'the id printed by the worker / stored in diagnoses.id')
    .option('--json', 'print the stored diagnosis (criteria, verdict, findings, observations, test mail) as JSON')
    .option('--lang <lang>', 'ja or en (default: ja if LANG starts with ja, else en)')
    .action(
      action(async (id: string, opts: { json?: boolean; lang?: string }) => {
        const { InputError } = await import('../../lib/errors.ts');
        if (!/^\d{1,18}$/.test(id)) throw new InputError(`diagnosis id must be a number, got "${id}"`);
        const lang = langOption(opts.lang, (process.env.LANG ?? '').startsWith('ja') ? 'ja' : 'en');
        const { loadDiagnosisView } = await import('../../receiver/show.ts');
        const { renderDiagnosis } = await import('../../receiver/result-mail.ts');
        return withDatabase(async (handle) => {
          const found = await loadDiagnosisView(handle.db, id);
          if (!found) throw new InputError(`no diagnosis with id ${id}`);
          if (opts.json) process.stdout.write(`${JSON.stringify(found.json, null, 2)}\n`);
          else {
            process.stdout.write(renderDiagnosis(found.view, lang));
            if (found.resultMail) {
              const rm = found.resultMail;
              const { escapeControls } = await import('../../lib/clean-text.ts');
              // The detail quotes the MX's reply: escape it before it reaches the terminal.
              process.stdout.write(`\n${lang === 'ja' ? '結果メール' : 'Result mail'}: ${rm.status}${rm.reason ? ` [${rm.reason}]` : ''}${rm.to ? ` → ${escapeControls(rm.to)}` : ''}${rm.detail ? ` (${escapeControls(rm.detail)})` : ''}\n`);
            }
          }
        });
      }),
    );
}
