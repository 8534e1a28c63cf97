// The README's runnable examples, run against the built package as a user would paste them;
// an example marked ranks=N runs as an N-rank job started as `mpilite run` starts one.
import { describeReadme } from '@ibal/tooling/readme';
import { runJob } from './helpers.js';

describeReadme(new URL('..', import.meta.url), {
  launch: async (file, ranks, timeoutMs) => {
    const job = await runJob(ranks, file, [], { timeoutMs });
    return job.codes.map((code, r) => ({ code, signal: job.signals[r] ?? null, stdout: job.stdout[r]!, stderr: job.stderr[r]!, timedOut: false }));
  },
});
