import { tsupPreset } from '@ibal/tooling/tsup';

// Two entries: the library, and the --import hook of transparent mode.
export default tsupPreset({ entry: ['src/index.ts', 'src/register.ts'] });
