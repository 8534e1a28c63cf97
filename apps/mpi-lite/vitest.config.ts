import { vitestPreset } from '@ibal/tooling/vitest';

// Every test starts whole jobs (several processes); on two shared cores the files run one at a time.
export default vitestPreset({ fileParallelism: false, testTimeout: 150_000 });
