// The dependency graph is part of the design: each package may import only
// packages of a lower layer. This module reads every workspace package's
// manifest and sources and reports each import that breaks the rule.
import fs from 'node:fs';
import path from 'node:path';

export const LAYERS = {
  '@ibal/tooling': -1,
  '@ibal/hca': 0,
  '@ibal/verbs': 1,
  '@ibal/cm': 2,
  '@ibal/mpi': 3,
  '@ibal/sdp': 4,
  '@ibal/mpi-lite': 5,
  '@ibal/utils': 5,
};

function workspacePackages(root) {
  const dirs = [];
  for (const group of ['packages', 'apps']) {
    const g = path.join(root, group);
    if (!fs.existsSync(g)) continue;
    for (const d of fs.readdirSync(g)) {
      const manifest = path.join(g, d, 'package.json');
      if (fs.existsSync(manifest)) dirs.push(path.join(g, d));
    }
  }
  return dirs;
}

function* sourceFiles(dir) {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sourceFiles(p);
    else if (/\.(ts|mts|js|mjs|cc|cpp)$/.test(e.name)) yield p;
  }
}

export function checkLayers(root) {
  const problems = [];
  const packages = [];
  for (const dir of workspacePackages(root)) {
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    packages.push(pkg.name);
    const mine = LAYERS[pkg.name];
    if (mine === undefined) {
      problems.push(`${pkg.name}: not assigned a layer in tooling/scripts/layers.mjs`);
      continue;
    }
    const deps = { ...pkg.dependencies, ...pkg.peerDependencies, ...pkg.optionalDependencies };
    for (const dep of Object.keys(deps)) {
      const theirs = LAYERS[dep];
      if (theirs !== undefined && theirs >= mine && dep !== '@ibal/tooling') {
        problems.push(`${pkg.name} (layer ${mine}) depends on ${dep} (layer ${theirs})`);
      }
    }
    for (const file of sourceFiles(path.join(dir, 'src'))) {
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"]([^'"]+)['"]/g)) {
        const spec = m[1];
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec;
        const theirs = LAYERS[name];
        if (theirs !== undefined && name !== pkg.name && theirs >= mine) {
          problems.push(`${path.relative(root, file)} imports ${spec} (layer ${theirs}) from layer ${mine}`);
        }
        if (spec.startsWith('.')) {
          const target = path.resolve(path.dirname(file), spec);
          if (!target.startsWith(dir + path.sep)) problems.push(`${path.relative(root, file)} reaches outside its package: ${spec}`);
        }
      }
    }
  }
  return { packages, problems };
}
