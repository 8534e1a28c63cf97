// init() under Debian's Open MPI mpirun: ranks come from OMPI_COMM_WORLD_*,
// rank 0 serves the rendezvous, the others find it (session-directory file
// or the port derived from the job id).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sysStatus } from '@ibal/hca';
import { fixtures } from './helpers.js';

const have = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
const st = sysStatus();
const shm = st.shm.on && st.futex.on && st.vm.on;

describe.skipIf(!have)('under mpirun (Open MPI)', () => {
  it('3 ranks: init reads OMPI_* and every rank joins', () => {
    const r = spawnSync('mpirun', ['--allow-run-as-root', '--oversubscribe', '-n', '3', process.execPath, path.join(fixtures, 'whoami.mjs')], {
      encoding: 'utf8',
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { launcher: string; rank: number; size: number; localSize: number; token: number; sum: number; transports: string[] });
    expect(lines.map((l) => l.rank).sort()).toEqual([0, 1, 2]);
    for (const l of lines) {
      expect(l).toMatchObject({ launcher: 'mpirun', size: 3, localSize: 3, sum: 6, token: (l.rank + 2) % 3 });
      // Shared memory when @ibal/hca's native addon is built, verbs RC otherwise.
      expect(l.transports.filter((t) => t === (shm ? 'shm' : 'verbs'))).toHaveLength(2);
    }
  });
});
