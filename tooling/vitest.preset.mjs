// Shared vitest settings. Transport tests open sockets and spawn processes, so
// they run in forked workers (a crash stays in its worker) with generous but
// bounded timeouts: a hang fails the test instead of stalling CI.
import { defineConfig } from 'vitest/config';

export function vitestPreset(overrides = {}) {
  return defineConfig({
    test: {
      pool: 'forks',
      testTimeout: 60_000,
      hookTimeout: 30_000,
      teardownTimeout: 10_000,
      include: ['test/**/*.test.ts'],
      ...overrides,
    },
  });
}
