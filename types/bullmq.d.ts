// BullMQ declares `upsertJobScheduler(jobSchedulerId: NameType, …)`: the scheduler's id typed as a job name.
// It is the scheduler's own key (workers/jobs.ts schedulerId: `survey-<name>`), distinct from the name of the
// jobs it adds (`scheduled-run`); this overload takes it as the string it is.
import type { Job, JobSchedulerTemplateOptions, RepeatOptions } from 'bullmq';

declare module 'bullmq' {
  interface Queue<DataTypeOrJob, DefaultResultType, DefaultNameType extends string, DataType, ResultType, NameType extends string> {
    upsertJobScheduler(
      jobSchedulerId: string,
      repeatOpts: Omit<RepeatOptions, 'key'>,
      jobTemplate?: { name?: NameType; data?: DataType; opts?: JobSchedulerTemplateOptions },
    ): Promise<Job<DataType, ResultType, NameType>>;
  }
}
