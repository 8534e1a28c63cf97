// Builds every native addon under native/<name>/binding.gyp with node-gyp.
// An addon that cannot be built here (no compiler, no rdma-core headers) is
// not a build failure: the soft HCA is pure TypeScript and keeps working.
// The reason is written to native/<name>/build/ibal-build-error.txt so the
// loader, and `ibal devinfo`, can say why a native feature is off.
// IBAL_NATIVE_REQUIRED=1 (set by CI after it installs the Debian headers)
// turns a failed addon build into a failed package build.
//
// With --install (the package's install script, run when it is installed
// from a tarball or the registry) an addon that came built in the package
// and loads here is kept, as sharp and zeromq.js keep their prebuilds; one
// that is missing or does not load (another architecture or libc, no
// libibverbs) is built from the sources the package ships. Installing never
// fails for want of an addon: the reason is recorded as above.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nativeRoot = path.resolve(here, '..', 'native');
const require = createRequire(import.meta.url);
const install = process.argv.includes('--install');
const required = !install && process.env.IBAL_NATIVE_REQUIRED === '1';
const rebuild = !install && process.env.IBAL_NATIVE_REBUILD === '1';
// An addon whose prerequisites are installed must build: with
// libibverbs-dev present, a broken native/verbs is a bug, not a missing
// prerequisite, and fails the build even without IBAL_NATIVE_REQUIRED; so
// does native/sys, which needs only a C++ compiler and Node's own headers
// (a compile error there had let the tests run on the soft HCA's fallbacks).
const requiredWhenPresent = { verbs: ['/usr/include/infiniband/verbs.h', '/usr/include/rdma/rdma_cma.h'] };

function onPath(cmd) {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, cmd)));
}

/** The prerequisites `name` needs are all here, described for the error message; undefined otherwise. */
function prerequisitesMet(name) {
  const headers = requiredWhenPresent[name];
  if (headers) return headers.every((h) => fs.existsSync(h)) ? headers.join(' and ') : undefined;
  const compiler = process.env.CXX || ['c++', 'g++'].find(onPath);
  return name === 'sys' && compiler && nodeDir() ? `a C++ compiler (${compiler}) and Node's headers` : undefined;
}
let mustFail = 0;

// Node-API addons need only node_api.h, which ships with Node itself; point
// node-gyp at it instead of letting it download headers (no internet here).
function nodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

// node-gyp is a devDependency in the workspace; an installed package uses
// the one its package manager brings (npm and pnpm name it in
// npm_config_node_gyp for install scripts).
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  const bundled = process.env.npm_config_node_gyp;
  gyp = bundled && fs.existsSync(bundled) ? bundled : undefined;
}

const dirs = fs.existsSync(nativeRoot)
  ? fs.readdirSync(nativeRoot).filter((d) => fs.existsSync(path.join(nativeRoot, d, 'binding.gyp')))
  : [];
/** Newest modification time under `p` (a file or a directory tree). */
function newest(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = 0;
  for (const e of fs.readdirSync(p)) m = Math.max(m, newest(path.join(p, e)));
  return m;
}

/** The built addon is newer than its sources and binding.gyp: nothing to do. */
function upToDate(dir) {
  const release = path.join(dir, 'build', 'Release');
  const built = fs.existsSync(release) ? fs.readdirSync(release).filter((f) => f.endsWith('.node')) : [];
  if (built.length === 0 || fs.existsSync(path.join(dir, 'build', 'ibal-build-error.txt'))) return false;
  const out = Math.min(...built.map((f) => fs.statSync(path.join(release, f)).mtimeMs));
  const shared = path.join(nativeRoot, 'include');
  const headers = fs.existsSync(shared) ? newest(shared) : 0;
  return out > Math.max(newest(path.join(dir, 'src')), newest(path.join(dir, 'binding.gyp')), headers);
}

/** The addon built in `dir` loads into this Node (tried in a child, so a crash there is not ours). */
function loads(dir) {
  const release = path.join(dir, 'build', 'Release');
  const built = fs.existsSync(release) ? fs.readdirSync(release).filter((f) => f.endsWith('.node')) : [];
  if (built.length === 0) return false;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(release, built[0]))})`], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * node-gyp rebuild starts by deleting build/: two builds of one addon at once
 * (turbo runs packages in parallel, people run builds in two shells) would
 * delete each other's output. A lock directory serialises them; a lock older
 * than the build timeout is a crashed build's and is taken over.
 */
function withLock(dir, fn) {
  const lock = path.join(dir, '.build-lock');
  for (let waited = 0; ; waited += 200) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      let age = 0;
      try {
        age = Date.now() - fs.statSync(lock).mtimeMs;
      } catch {
        continue;
      }
      if (age > 330_000 || waited > 330_000) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      sleep(200);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

let failed = 0;
for (const name of dirs) {
  const dir = path.join(nativeRoot, name);
  const errFile = path.join(dir, 'build', 'ibal-build-error.txt');
  if (install && loads(dir)) {
    console.log(`native/${name}: the addon in the package loads here`);
    continue;
  }
  if (!install && !rebuild && withLock(dir, () => upToDate(dir))) {
    console.log(`native/${name}: up to date`);
    continue;
  }
  const args = [gyp, 'rebuild', '--release', '-j', '2'];
  const nd = nodeDir();
  if (nd) args.push(`--nodedir=${nd}`);
  const r = gyp
    ? withLock(dir, () => (!install && !rebuild && upToDate(dir) ? { status: 0, stdout: '', stderr: '' } : spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', timeout: 300_000 })))
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
    const met = install ? undefined : prerequisitesMet(name);
    if (met) {
      mustFail++;
      console.error(`native/${name}: build failed although ${met} are installed: ${why}`);
    } else {
      console.warn(`native/${name}: not built (${why}); the soft HCA works without it`);
    }
  }
}
if (mustFail) {
  console.error(`${mustFail} native addon(s) failed to build although their prerequisites are installed`);
  process.exit(1);
}
if (failed && required) {
  console.error(`${failed} native addon(s) failed to build and IBAL_NATIVE_REQUIRED=1`);
  process.exit(1);
}
