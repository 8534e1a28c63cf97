import { defineConfig } from 'vitest/config';
import { vitestPreset } from '@ibal/tooling/vitest';

// The suites that drive the soft provider run twice: over UDP
// (IBAL_SOFT_SHM=0) and over the same-host shared-memory path
// (IBAL_SOFT_SHM=1: every packet between two local soft devices goes
// through a ring, and large WRITE/READ by reference), so the verbs API is
// checked on both. The rest (argument checks against a provider double)
// runs once.
const base = vitestPreset().test!;
const soft = ['test/soft-e2e.test.ts', 'test/mw.test.ts', 'test/cq-ex.test.ts', 'test/qp-ex.test.ts', 'test/mad-agent.test.ts', 'test/providers.test.ts'];

export default defineConfig({
  test: {
    projects: [
      { test: { ...base, name: 'udp', env: { IBAL_SOFT_SHM: '0' } } },
      { test: { ...base, name: 'shm', include: soft, env: { IBAL_SOFT_SHM: '1' } } },
    ],
  },
});
