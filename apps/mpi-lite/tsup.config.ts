import { tsupPreset } from '@ibal/tooling/tsup';

// One executable with the workspace's TypeScript bundled in. @ibal/hca stays
// a runtime import: it finds its native addons (shared memory, futexes,
// process_vm_readv) next to its own files, which a bundle cannot carry.
export default tsupPreset({
  entry: ['src/cli.ts'],
  dts: false,
  banner: { js: '#!/usr/bin/env node' },
  noExternal: ['@ibal/mpi', '@ibal/verbs'],
  external: ['@ibal/hca'],
});
