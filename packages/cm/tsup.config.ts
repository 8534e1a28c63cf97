import { tsupPreset } from '@ibal/tooling/tsup';

export default tsupPreset();
