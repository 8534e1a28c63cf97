import { vitestPreset } from '@ibal/tooling/vitest';

export default vitestPreset();
