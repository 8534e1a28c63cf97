import { tsupPreset } from '@ibal/tooling/tsup';

// One executable: the CLI, with a shebang so `ibal` runs from the bin link.
export default tsupPreset({ entry: ['src/cli.ts'], dts: false, banner: { js: '#!/usr/bin/env node' } });
