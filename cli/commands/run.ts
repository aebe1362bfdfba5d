import type { Command } from 'commander';
import { action, intOption, withDatabase, withServices } from '../run.ts';

type Services = import('../../workers/setup.ts').Services;

/** Shows progress on stderr until the run is no longer running. Returns the final progress. */
async function waitForRun(s: Services, runId: number): Promise<import('../../workers/run.ts').RunProgress> {
  const { runProgress, topUp, completeIfDone } = await import('../../workers/run.ts');
  const { progressLine, rateOf } = await import('../../workers/progress.ts');
  const tty = process.stderr.isTTY;
  const samples: { t: number; done: number }[] = [];
  let lastPrint = 0;
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSigint);
  try {
    for (;;) {
      // This process helps the feeder too (the workers also do): the run needs no waiting process.
      await topUp(s, runId).catch(() => {});
      await completeIfDone(s, runId).catch(() => {});
      const p = await runProgress(s.db, runId);
      const now = Date.now();
      samples.push({ t: now, done: p.done });
      while (samples.length > 2 && now - samples[0].t > 30_000) samples.shift();
      const line = `run ${runId} ${progressLine(p, rateOf(p, samples))}`;
      const finished = p.state !== 'running' || interrupted;
      if (tty) process.stderr.write(`\r\x1b[2K${line}`);
      else if (finished || now - lastPrint >= 10_000) {
        process.stderr.write(`${line}\n`);
        lastPrint = now;
      }
      if (finished) {
        if (tty) process.stderr.write('\n');
        if (interrupted) process.stderr.write(`stopped waiting; the run goes on (mailcensus status --run ${runId})\n`);
        return p;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

function printStatus(
  p: import('../../workers/run.ts').RunProgress,
  rate: number,
  counts: Awaited<ReturnType<typeof import('../../workers/run.ts').queueCounts>> | null,
  line: string,
  health: import('../../workers/run.ts').RunHealth | null,
): void {
  console.log(`run ${p.runId} of survey ${p.survey}: ${p.state}`);
  console.log(`  ${line}`);
  const t = (d: Date | null) => (d ? d.toISOString() : '-');
  console.log(`  started ${t(p.startedAt)}  finished ${t(p.finishedAt)}${p.cancelledAt ? `  cancelled ${t(p.cancelledAt)}` : ''}`);
  if (p.optedOut) console.log(`  ${p.optedOut} survey domains skipped (opt-out list)`);
  const v = Object.entries(p.verdicts).map(([k, n]) => `${k} ${n}`).join(', ');
  if (v) console.log(`  verdicts: ${v}`);
  if (counts) {
    const c = (x: Record<string, number>) => `${x.waiting + (x.prioritized ?? 0)} waiting, ${x.active} active, ${x.delayed} delayed, ${x.failed} failed`;
    console.log(`  queues (all runs): domains ${c(counts.domains)}; probes ${c(counts.probes)}`);
    if (counts.domains.failed + counts.probes.failed > 0 && p.state === 'running') {
      console.log(`  some jobs failed for good: \`mailcensus resume --run ${p.runId}\` retries them`);
    }
  }
  if (health) {
    const since = health.secondsSinceLastDiagnosis;
    console.log(`  last diagnosis: ${since === null ? 'none yet' : `${since} s ago (${health.lastDiagnosisAt!.toISOString()})`}`);
    if (since !== null && since > 300 && p.state === 'running') console.log('  !!! no diagnosis for over 5 minutes: are the workers running? (see their logs)');
    console.log(`  retries after infrastructure errors: ${health.retries}; failed for good: ${health.failedForGood}; steps abandoned by the watchdog: ${health.abandoned}`);
    if (health.longRunning.length > 0) {
      console.log(`  ${health.longRunning.length} job(s) running longer than ${health.longRunningMs / 1000} s:`);
      for (const j of health.longRunning.slice(0, 10)) console.log(`    ${j.queue} ${j.jobId} (${j.subject}): ${j.seconds} s, ${j.attemptsMade} earlier failures`);
    }
  }
  void rate;
}

export function register(program: Command): void {
  program
    .command('run')
    .description('start a run of a survey: enqueue its domains for the workers')
    .requiredOption('--survey <name>', 'the survey (see `mailcensus ingest`)')
    .option('--wait', 'show progress on stderr until every domain has a diagnosis')
    .option('--dry-run', 'only say what the run would probe and how long it would take; probe nothing')
    .option('--list', 'with --dry-run: print the domains it would probe, one per line')
    .option('--workers <n>', 'with --dry-run: worker processes to estimate for', intOption('--workers'), 1)
    .option('--pretty', 'human-readable logs')
    .action(
      action(async (opts: { survey: string; wait?: boolean; dryRun?: boolean; list?: boolean; workers: number; pretty?: boolean }) => {
        if (opts.dryRun) {
          const { planRun, formatPlan, plannedDomains } = await import('../../workers/dry-run.ts');
          return withDatabase(async (handle, cfg) => {
            const plan = await planRun(handle.db, cfg, opts.survey, opts.workers);
            process.stderr.write(`${formatPlan(plan, cfg)}\n`);
            if (opts.list) for await (const d of plannedDomains(handle.db, cfg, opts.survey)) process.stdout.write(`${d}\n`);
            return 0;
          });
        }
        return withServices(async (s) => {
          const { createRun } = await import('../../workers/run.ts');
          const r = await createRun(s, opts.survey);
          process.stderr.write(
            `run ${r.runId} of survey ${opts.survey}: ${r.total} domains` + (r.optedOut ? ` (${r.optedOut} opted out, skipped)` : '') + '\n',
          );
          console.log(r.runId);
          if (!opts.wait) return 0;
          const p = await waitForRun(s, r.runId);
          return p.state === 'done' ? 0 : p.state === 'cancelled' ? 1 : 130;
        }, { pretty: opts.pretty, checkEviction: true });
      }),
    );

  program
    .command('status')
    .description('show the progress of a run (the latest by default)')
    .option('--run <id>', 'run id', intOption('--run'))
    .option('--survey <name>', 'the latest run of this survey')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { run?: number; survey?: string; json?: boolean }) => {
        return withServices(async (s) => {
          const { runProgress, latestRunId, queueCounts, runHealth } = await import('../../workers/run.ts');
          const { progressLine, rateOf } = await import('../../workers/progress.ts');
          const { InputError } = await import('../../lib/errors.ts');
          const runId = opts.run ?? (await latestRunId(s.db, opts.survey));
          if (runId === null) throw new InputError(opts.survey ? `survey "${opts.survey}" has no runs` : 'there are no runs yet (`mailcensus run --survey NAME`)');
          const p = await runProgress(s.db, runId);
          const rate = rateOf(p);
          const counts = await queueCounts(s.queues).catch(() => null);
          const health = await runHealth(s, runId).catch(() => null);
          if (opts.json) {
            console.log(JSON.stringify({ ...p, rate, queues: counts, health }, null, 2));
          } else {
            printStatus(p, rate, counts, progressLine(p, rate), health);
          }
          return 0;
        });
      }),
    );

  program
    .command('cancel')
    .description('cancel a run: its queued jobs are removed, active ones stop at their next step')
    .requiredOption('--run <id>', 'run id', intOption('--run'))
    .action(
      action(async (opts: { run: number }) => {
        return withServices(async (s) => {
          const { cancelRun } = await import('../../workers/run.ts');
          const r = await cancelRun(s, opts.run);
          if (!r.cancelled) {
            console.log(`run ${opts.run} is ${r.state}; nothing to cancel`);
            return 0;
          }
          console.log(`run ${opts.run} cancelled (${r.removedJobs} queued jobs removed); \`mailcensus resume --run ${opts.run}\` continues it`);
          return 0;
        });
      }),
    );

  program
    .command('resume')
    .description('resume a cancelled run (or retry the failed jobs of a running one)')
    .requiredOption('--run <id>', 'run id', intOption('--run'))
    .option('--wait', 'show progress until the run is done')
    .action(
      action(async (opts: { run: number; wait?: boolean }) => {
        return withServices(async (s) => {
          const { resumeRun } = await import('../../workers/run.ts');
          const r = await resumeRun(s, opts.run);
          if (!r.resumed) {
            console.log(`run ${opts.run} is already ${r.state}`);
            return 0;
          }
          console.log(`run ${opts.run} resumed (${r.added} domains enqueued)`);
          if (!opts.wait) return 0;
          const p = await waitForRun(s, opts.run);
          return p.state === 'done' ? 0 : p.state === 'cancelled' ? 1 : 130;
        }, { checkEviction: true });
      }),
    );
}
