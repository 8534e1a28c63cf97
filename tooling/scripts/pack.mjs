// pnpm pack for every publishable workspace package (pnpm 9's pack has no
// --recursive): one tarball each in the destination folder, workspace:*
// dependencies turned into versions, so that `npm install <tarballs>` works
// in a project of any package manager. Run after the build.
//   node tooling/scripts/pack.mjs <destination>
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The workspace's packages that are not private (apps included: they are the CLIs users install). */
export function publishable() {
  const out = [];
  for (const group of ['packages', 'apps']) {
    for (const d of fs.readdirSync(path.join(root, group))) {
      const manifest = path.join(root, group, d, 'package.json');
      if (!fs.existsSync(manifest)) continue;
      const pkg = JSON.parse(fs.readFileSync(manifest, 'utf8'));
      if (!pkg.private) out.push({ name: pkg.name, dir: path.join(root, group, d) });
    }
  }
  return out;
}

/** pnpm as this script was started by it (`pnpm run`), else from PATH. */
function pnpm(args, cwd) {
  const execpath = process.env.npm_execpath;
  const [cmd, pre] = execpath && /pnpm/.test(path.basename(execpath)) ? [process.execPath, [execpath]] : ['pnpm', []];
  return spawnSync(cmd, [...pre, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
}

/** Packs every publishable package into `dest`; returns the tarballs' paths. */
export function packAll(dest) {
  fs.mkdirSync(dest, { recursive: true });
  const out = [];
  for (const p of publishable()) {
    if (!fs.existsSync(path.join(p.dir, 'dist'))) throw new Error(`${p.name} is not built (pnpm build first)`);
    const r = pnpm(['pack', '--pack-destination', path.resolve(dest)], p.dir);
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`pnpm pack ${p.name} exited with ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
    // pnpm ends its report with the tarball's path.
    const tarball = r.stdout.trim().split('\n').pop()?.trim();
    if (!tarball?.endsWith('.tgz') || !fs.existsSync(tarball)) throw new Error(`pnpm pack ${p.name} named no tarball:\n${r.stdout}`);
    out.push(tarball);
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dest = process.argv[2];
  if (!dest) {
    console.error('usage: node tooling/scripts/pack.mjs <destination>');
    process.exit(2);
  }
  for (const f of packAll(dest)) console.log(f);
}
