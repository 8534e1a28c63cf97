// The packages as users get them: packed as for publishing, installed by npm
// into a project outside the workspace (offline: every tarball is local),
// and used there. The workspace's own tests import each package's sources
// and find the native addons in the tree; this is where a file missing from
// a package's `files`, a loader that only knows the repository's layout, or
// a type declaration that leans on a devDependency would show.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packAll } from '../scripts/pack.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ibal-pack-'));
const tgz = path.join(work, 'tgz');
const app = path.join(work, 'app');

/** Runs a command to its end (killed at the deadline) and returns what it printed. */
function run(cmd: string, args: string[], cwd: string, timeoutMs = 60_000, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited with ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const nodeIn = (args: string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = {}) => run(process.execPath, args, app, timeoutMs, env);
const sysOn = `import('@ibal/hca').then((h) => console.log(JSON.stringify(h.sysStatus().addon)))`;
let installLog = '';

beforeAll(() => {
  fs.mkdirSync(tgz);
  fs.mkdirSync(app);
  const tarballs = packAll(tgz);
  // @ibal/hca's one dependency, from the workspace's copy, so that npm needs no registry.
  const addonApi = path.dirname(createRequire(path.join(root, 'packages', 'hca', 'package.json')).resolve('node-addon-api/package.json'));
  tarballs.push(path.join(tgz, ok(run('npm', ['pack', addonApi, '--pack-destination', tgz], work), 'npm pack node-addon-api').trim().split('\n').pop()!));
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  installLog = ok(run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', ...tarballs], app, 120_000), 'npm install');
}, 180_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('packed packages installed by npm outside the workspace', () => {
  it('ship the addon sources and build script, and no build leftovers', () => {
    const hca = fs.readdirSync(tgz).find((f) => f.startsWith('ibal-hca-'))!;
    const files = ok(run('tar', ['tzf', path.join(tgz, hca)], work), 'tar').split('\n');
    for (const f of ['native/sys/binding.gyp', 'native/sys/src/addon.cc', 'native/include/errno-name.h', 'scripts/build-native.mjs', 'native/sys/build/Release/ibal_sys.node']) {
      expect(files).toContain(`package/${f}`);
    }
    expect(files.filter((f) => /obj\.target|\.build-lock|ibal-build-error|\/test\//.test(f))).toEqual([]);
  });

  it('keep the addon that came in the package, and load it', () => {
    expect(installLog).toContain('native/sys: the addon in the package loads here');
    expect(JSON.parse(ok(nodeIn(['-e', sysOn]), 'sysStatus'))).toEqual({ on: true });
  });

  it('run an MPI job with mpilite, local ranks over shared memory', () => {
    const bin = path.join(app, 'node_modules', '.bin', 'mpilite');
    const example = path.join(app, 'node_modules', '@ibal', 'mpi-lite', 'examples', 'hello.mjs');
    const out = ok(run(bin, ['run', '-n', '2', example], app, 60_000), 'mpilite run');
    expect(out).toMatch(/\[0\] hello from rank 0 of 2 .*peers via self,shm/);
    expect(out).toMatch(/\[1\] hello from rank 1 of 2 .*peers via shm,self/);
  });

  it("run Node's http over SDP in transparent mode (--import @ibal/sdp/register)", () => {
    fs.writeFileSync(
      path.join(app, 'http.mjs'),
      `import http from 'node:http';
const server = http.createServer((req, res) => res.end(req.socket.transport + ' ' + req.url));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  http.get({ host: '127.0.0.1', port, path: '/x', agent: false }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => {
      console.log(JSON.stringify({ body, client: res.socket.transport }));
      server.close();
    });
  });
});
`,
    );
    const out = ok(nodeIn(['--import', '@ibal/sdp/register', 'http.mjs'], 60_000, { IBAL_SDP_RULES: 'both 127.0.0.1:*' }), 'http over SDP');
    expect(JSON.parse(out)).toEqual({ body: 'sdp /x', client: 'sdp' });
  });

  it('load with require() from CommonJS (Node >= 20.19 loads ES modules that way)', () => {
    fs.writeFileSync(
      path.join(app, 'cjs.cjs'),
      `const { openDevice, regMr, Access } = require('@ibal/verbs');
const { createServer } = require('@ibal/sdp');
const { init } = require('@ibal/mpi');
const { CmId } = require('@ibal/cm');
openDevice().then((ctx) => {
  const pd = ctx.allocPd();
  const mr = regMr(pd, 4096, Access.LOCAL_WRITE);
  console.log(JSON.stringify({ length: mr.length, kinds: [typeof createServer, typeof init, typeof CmId] }));
  mr.dereg();
  pd.dealloc();
  ctx.close();
});
`,
    );
    expect(JSON.parse(ok(nodeIn(['cjs.cjs']), 'require'))).toEqual({ length: 4096, kinds: ['function', 'function', 'function'] });
  });

  it('run the ibal CLI', () => {
    const out = ok(run(path.join(app, 'node_modules', '.bin', 'ibal'), ['devinfo'], app), 'ibal devinfo');
    expect(out).toMatch(/^hca_id:\tsoft0$/m);
    expect(out).toMatch(/state:\s+PORT_ACTIVE/);
  });

  it('type-check a TypeScript program against their declarations', () => {
    // @types/node is the consumer's own business; borrow the workspace's.
    fs.mkdirSync(path.join(app, 'node_modules', '@types'), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules', '@types', 'node'), path.join(app, 'node_modules', '@types', 'node'));
    fs.writeFileSync(
      path.join(app, 'main.ts'),
      `import { addSoftDevice, sysStatus, type WorkCompletion } from '@ibal/hca';
import { openDevice, regMr, Access, WcStatus } from '@ibal/verbs';
import { CmId } from '@ibal/cm';
import { init, SUM } from '@ibal/mpi';
import { createServer, type SdpSocket } from '@ibal/sdp';
const dev = addSoftDevice({ name: 'soft9', address: '127.0.0.1', port: 0 });
const ok: boolean = sysStatus().addon.on;
const status: WcStatus = WcStatus.SUCCESS;
const f = (wc: WorkCompletion): number => wc.byteLen;
const server = createServer((s: SdpSocket) => s.end());
export { dev, ok, status, f, server, openDevice, regMr, Access, CmId, init, SUM };
`,
    );
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['main.ts'] }),
    );
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    ok(nodeIn([tsc, '-p', '.'], 120_000), 'tsc');
  });

  it('build the addon from the shipped sources when the package has none that loads', () => {
    // One addon that no longer loads here (as one built for another system), one missing.
    const native = path.join(app, 'node_modules', '@ibal', 'hca', 'native');
    fs.writeFileSync(path.join(native, 'sys', 'build', 'Release', 'ibal_sys.node'), 'not a shared object');
    fs.rmSync(path.join(native, 'verbs', 'build'), { recursive: true, force: true });
    expect(JSON.parse(ok(nodeIn(['-e', sysOn]), 'sysStatus'))).toEqual({ on: false, reason: expect.stringContaining('npm rebuild @ibal/hca') });
    const log = ok(run('npm', ['rebuild', '@ibal/hca', '--offline', '--foreground-scripts'], app, 300_000), 'npm rebuild');
    expect(log).toContain('native/sys: built');
    expect(log).toContain('native/verbs: built');
    expect(JSON.parse(ok(nodeIn(['-e', sysOn]), 'sysStatus'))).toEqual({ on: true });
  }, 300_000);
});
