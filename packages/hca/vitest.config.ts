import { vitestPreset } from '@ibal/tooling/vitest';

// The soft HCA suites run twice: over UDP (IBAL_SOFT_SHM=0) and over the
// same-host shared-memory path (IBAL_SOFT_SHM=1: every packet between two
// local soft devices goes through a ring). Peer processes inherit the mode.
export default vitestPreset({
  projects: [
    { extends: true, test: { name: 'udp', env: { IBAL_SOFT_SHM: '0' } } },
    { extends: true, test: { name: 'shm', include: ['test/soft-*.test.ts'], env: { IBAL_SOFT_SHM: '1' } } },
  ],
});
