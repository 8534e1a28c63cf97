// Builds every native addon under native/<name>/binding.gyp with node-gyp.
// An addon that cannot be built here (no compiler, no rdma-core headers) is
// not a build failure: the soft HCA is pure TypeScript and keeps working.
// The reason is written to native/<name>/build/ibal-build-error.txt so the
// loader, and `ibal devinfo`, can say why a native feature is off.
// IBAL_NATIVE_REQUIRED=1 (set by CI after it installs the Debian headers)
// turns a failed addon build into a failed package build.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nativeRoot = path.resolve(here, '..', 'native');
const require = createRequire(import.meta.url);
const required = process.env.IBAL_NATIVE_REQUIRED === '1';
// An addon whose system headers are installed must build: with
// libibverbs-dev present, a broken native/verbs is a bug, not a missing
// prerequisite, and fails the build even without IBAL_NATIVE_REQUIRED.
const requiredWhenPresent = { verbs: ['/usr/include/infiniband/verbs.h', '/usr/include/rdma/rdma_cma.h'] };
let mustFail = 0;

// Node-API addons need only node_api.h, which ships with Node itself; point
// node-gyp at it instead of letting it download headers (no internet here).
function nodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  gyp = undefined;
}

const dirs = fs.existsSync(nativeRoot)
  ? fs.readdirSync(nativeRoot).filter((d) => fs.existsSync(path.join(nativeRoot, d, 'binding.gyp')))
  : [];
let failed = 0;
for (const name of dirs) {
  const dir = path.join(nativeRoot, name);
  const errFile = path.join(dir, 'build', 'ibal-build-error.txt');
  const args = [gyp, 'rebuild', '--release', '-j', '2'];
  const nd = nodeDir();
  if (nd) args.push(`--nodedir=${nd}`);
  const r = gyp
    ? spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', timeout: 300_000 })
    : { status: 1, stdout: '', stderr: 'node-gyp is not installed' };
  fs.mkdirSync(path.dirname(errFile), { recursive: true });
  if (r.status === 0) {
    fs.rmSync(errFile, { force: true });
    console.log(`native/${name}: built`);
  } else {
    failed++;
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
    // The first compiler or linker error says why better than node-gyp's trailer.
    const why =
      out.split('\n').find((l) => /fatal error|error:|cannot find|not found|No such file/i.test(l))?.trim() ??
      (r.error ? String(r.error) : `node-gyp exited with ${r.status}`);
    fs.writeFileSync(errFile, `${why}\n\n${out.slice(-8000)}`);
    const headers = requiredWhenPresent[name];
    if (headers && headers.every((h) => fs.existsSync(h))) {
      mustFail++;
      console.error(`native/${name}: build failed although ${headers.join(' and ')} are installed: ${why}`);
    } else {
      console.warn(`native/${name}: not built (${why}); the soft HCA works without it`);
    }
  }
}
if (mustFail) {
  console.error(`${mustFail} native addon(s) failed to build although their headers are installed`);
  process.exit(1);
}
if (failed && required) {
  console.error(`${failed} native addon(s) failed to build and IBAL_NATIVE_REQUIRED=1`);
  process.exit(1);
}
