import { defineConfig } from 'tsup';

// Every package ships ESM plus declarations from its single public entry.
export function tsupPreset(overrides = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    ...overrides,
  });
}
