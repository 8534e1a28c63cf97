import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkLayers } from './layers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { packages, problems } = checkLayers(root);
for (const p of problems) console.error(`layer violation: ${p}`);
console.log(`${packages.length} packages checked, ${problems.length} layer violations`);
process.exit(problems.length ? 1 : 0);
