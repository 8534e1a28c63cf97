import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM script without declarations
import { checkLayers } from '../scripts/layers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('layering', () => {
  it('no package imports a layer above its own', () => {
    const { packages, problems } = checkLayers(root);
    expect(packages.length).toBeGreaterThanOrEqual(2);
    expect(problems).toEqual([]);
  });

  it('the check catches an upward import', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-layers-'));
    try {
      fs.mkdirSync(path.join(tmp, 'packages', 'hca', 'src'), { recursive: true });
      fs.writeFileSync(path.join(tmp, 'packages', 'hca', 'package.json'), JSON.stringify({ name: '@ibal/hca' }));
      fs.writeFileSync(path.join(tmp, 'packages', 'hca', 'src', 'x.ts'), "import { openDevice } from '@ibal/verbs';\n");
      const { problems } = checkLayers(tmp);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/imports @ibal\/verbs/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
