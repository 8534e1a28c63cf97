import { defineConfig } from 'vitest/config';
import { vitestPreset } from '@ibal/tooling/vitest';

// The soft HCA suites run twice: over UDP (IBAL_SOFT_SHM=0) and over the
// same-host shared-memory path (IBAL_SOFT_SHM=1: every packet between two
// local soft devices goes through a ring). Peer processes inherit the mode.
const base = vitestPreset().test!;

export default defineConfig({
  test: {
    projects: [
      { test: { ...base, name: 'udp', env: { IBAL_SOFT_SHM: '0' } } },
      { test: { ...base, name: 'shm', include: ['test/soft-*.test.ts'], env: { IBAL_SOFT_SHM: '1' } } },
    ],
  },
});
