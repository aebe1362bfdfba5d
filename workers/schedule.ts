// Periodic runs of a survey (e.g. the annual survey) with BullMQ job schedulers: the scheduler adds a
// `scheduled-run` job to the control queue at every firing and a worker creates the run.
import { InputError } from '../lib/errors.ts';
import { schedulerId } from './jobs.ts';
import { JOB_OPTIONS, type Queues } from './queues.ts';

export interface ScheduleInfo {
  id: string;
  survey: string;
  cron: string;
  tz: string | null;
  next: Date | null;
}

export function validateCron(cron: string): void {
  const fields = cron.trim().split(/\s+/);
  if (fields.length < 5 || fields.length > 6) {
    throw new InputError(`--cron "${cron}" needs 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`);
  }
}

export async function addSchedule(queues: Queues, survey: string, cron: string, tz?: string): Promise<ScheduleInfo> {
  validateCron(cron);
  const id = schedulerId(survey);
  try {
    await queues.control.upsertJobScheduler(
      id,
      { pattern: cron, ...(tz ? { tz } : {}) },
      { name: 'scheduled-run', data: { survey }, opts: { ...JOB_OPTIONS['scheduled-run'] } },
    );
  } catch (err) {
    // BullMQ parses the pattern (cron-parser) and rejects a bad one or an unknown time zone.
    const msg = (err as Error).message ?? String(err);
    if (/ECONN|Connection|closed/i.test(msg)) throw err;
    throw new InputError(`--cron "${cron}"${tz ? ` --tz ${tz}` : ''} is not valid: ${msg}`);
  }
  return (await listSchedules(queues)).find((s) => s.id === id) ?? { id, survey, cron, tz: tz ?? null, next: null };
}

export async function listSchedules(queues: Queues): Promise<ScheduleInfo[]> {
  const all = await queues.control.getJobSchedulers(0, -1, true);
  return all.map((s) => ({
    id: s.key,
    survey: String((s.template?.data as { survey?: string } | undefined)?.survey ?? s.key.replace(/^survey-/, '')),
    cron: s.pattern ?? '',
    tz: s.tz ?? null,
    next: s.next ? new Date(s.next) : null,
  }));
}

export async function removeSchedule(queues: Queues, survey: string): Promise<boolean> {
  return queues.control.removeJobScheduler(schedulerId(survey));
}
