// The sequential baseline: the same generated world checked one domain at a time, in-process, with
// diagnoseDomain (DNS, then one SMTP session per MX IP, then the judgement), as a sequential tool such as
// checkdmarc does: no queue, no reuse of a shared MX's probe between domains. For time it runs on a seeded
// random sample of the world and extrapolates; the speed-up is the pipeline's domains/s measured in the same
// `npm run bench` invocation over the baseline's.
//
// Alone (`npm run bench -- baseline`) it runs the survey part on the 10,000-domain world with 2 workers
// first, so the ratio always compares two measurements of the same invocation.
import { results, type BenchArgs } from './lib/args.ts';

export async function run(args: BenchArgs = {}): Promise<void> {
  if (results.baseline) {
    console.log('baseline: already measured by the survey part of this invocation');
    return;
  }
  const { run: survey } = await import('./survey.ts');
  await survey({ ...args, sizes: args.sizes ?? '10000', workers: args.workers ?? '2' });
}
