// report.xlsx for the analysts who live in Excel (exceljs): one sheet per aggregate table, the same tables
// as the CSVs, with numbers stored as numbers and shares as fractions formatted as percentages. Suppressed
// cohort cells stay the text "<10". The per-domain table stays in domains.csv (Excel caps a sheet at 1M rows).
import ExcelJS from 'exceljs';
import { parse } from 'csv-parse/sync';
import type { Report } from './aggregate.ts';
import { aggregateCsvs } from './csv.ts';
import type { Lang } from './labels.ts';

/** Columns holding a percentage (0–100, as report.json has them): stored as a fraction and formatted. */
const PERCENT_COLUMNS = /^(pct|wilson_low|wilson_high|bounds_low|bounds_high|previous_pct)$/;
const NUMBER = /^-?\d+(\.\d+)?$/;

export async function reportXlsx(r: Report, lang: Lang): Promise<Buffer> {
  const wb = new ExcelJS.Workbook();
  wb.creator = 'mailcensus';
  wb.created = new Date(r.generated_at);
  for (const [file, text] of Object.entries(aggregateCsvs(r, lang))) {
    const rows = parse(text, { bom: true }) as string[][];
    const [header, ...body] = rows;
    if (!header) continue;
    const ws = wb.addWorksheet(file.replace(/\.csv$/, '').slice(0, 31));
    // `pct` is the printed, rounded share; the sheet keeps the exact share n / total instead, formatted 0%.
    const nCol = header.indexOf('n');
    const totalCol = header.indexOf('total');
    const names = header.map((h) => (h === 'pct' && nCol >= 0 && totalCol >= 0 ? 'share' : h));
    ws.addRow(names);
    ws.getRow(1).font = { bold: true };
    ws.views = [{ state: 'frozen', ySplit: 1 }];
    for (const line of body) {
      const values = line.map((cell, i) => {
        const h = header[i]!;
        if (h === 'pct' && nCol >= 0 && totalCol >= 0) {
          const n = Number(line[nCol]);
          const total = Number(line[totalCol]);
          return NUMBER.test(line[nCol] ?? '') && total > 0 ? n / total : null;
        }
        if (cell === '') return null;
        // The CSV guards text against spreadsheet formulas with a leading ': a cell here is never a formula.
        if (!NUMBER.test(cell)) return cell.startsWith("'") ? cell.slice(1) : cell;
        return PERCENT_COLUMNS.test(h) ? Number(cell) / 100 : Number(cell);
      });
      ws.addRow(values);
    }
    header.forEach((h, i) => {
      const col = ws.getColumn(i + 1);
      if (h === 'pct') col.numFmt = '0%';
      else if (PERCENT_COLUMNS.test(h)) col.numFmt = '0.0%';
      col.width = Math.min(40, Math.max(8, names[i]!.length + 2));
    });
  }
  return Buffer.from(await wb.xlsx.writeBuffer());
}
