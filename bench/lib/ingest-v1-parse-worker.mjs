// The CSV parsing of an ingest, on a worker thread: csv-parse reads the file while the main thread normalises,
// de-duplicates and COPYs the records it already has, so the two overlap (csv-parse alone takes ~3 s for a
// million rows). Plain JavaScript, so the worker needs no TypeScript loader whatever started the process.
//
// Protocol: workerData = { file, encoding: 'utf8' | 'sjis', codec, recordDelimiter, maxRecordSize }.
// The worker posts { type: 'records', records } batches (everything the parser had buffered), at most
// MAX_IN_FLIGHT ahead of the main thread's { type: 'credit' } replies, then { type: 'end' }, or
// { type: 'error', csv, code, message } (records parsed before an error are posted first, so line numbers hold).
import { parentPort, workerData } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parse, CsvError } from 'csv-parse';
import iconv from 'iconv-lite';

const MAX_IN_FLIGHT = 4;
const { file, encoding, codec, recordDelimiter, maxRecordSize } = workerData;

let credits = MAX_IN_FLIGHT;
let wakeCredit = null;
parentPort.on('message', (m) => {
  if (m?.type === 'credit') {
    credits++;
    const w = wakeCredit;
    wakeCredit = null;
    w?.();
  }
});

const parser = parse({
  bom: true,
  relax_quotes: true, // a stray quote inside a field is kept as a character, not a fatal error
  relax_column_count: true, // short and long rows are fine: records are read by column index
  record_delimiter: recordDelimiter,
  max_record_size: maxRecordSize,
});
const stages = [createReadStream(file, { highWaterMark: 1 << 20 })];
if (encoding === 'sjis') stages.push(iconv.decodeStream(codec));

let failure = null;
let ended = false;
let wake = null;
const signal = () => {
  const w = wake;
  wake = null;
  w?.();
};
parser.on('readable', signal);
parser.on('end', () => {
  ended = true;
  signal();
});
pipeline(...stages, parser).catch((err) => {
  failure = err;
  signal();
});

for (;;) {
  const records = [];
  let rec;
  while ((rec = parser.read()) !== null) records.push(rec);
  if (records.length) {
    while (credits === 0) await new Promise((resolve) => (wakeCredit = resolve));
    credits--;
    parentPort.postMessage({ type: 'records', records });
  } else if (failure) {
    parentPort.postMessage({
      type: 'error',
      csv: failure instanceof CsvError,
      code: failure.code ?? null,
      message: failure.message ?? String(failure),
    });
    break;
  } else if (ended) {
    parentPort.postMessage({ type: 'end' });
    break;
  } else {
    await new Promise((resolve) => (wake = resolve));
  }
}
parentPort.close();
