// Host lists and hostfiles map ranks by slot, as mpirun does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isLocalHost, mapRanks, parseHostList, parseHostfile } from '../src/hosts.js';
import { UsageError, parseRunArgs } from '../src/run.js';

describe('hosts', () => {
  it('--host a,b:2 fills each host up to its slots, then wraps', () => {
    const hosts = parseHostList('a,b:2');
    expect(hosts).toEqual([
      { host: 'a', slots: 1 },
      { host: 'b', slots: 2 },
    ]);
    expect(mapRanks(5, hosts)).toEqual(['a', 'b', 'b', 'a', 'b']);
    expect(mapRanks(2, [])).toEqual(['localhost', 'localhost']);
  });

  it('hostfiles take "host slots=N", "host:N" and comments', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpilite-hosts-'));
    try {
      const f = path.join(dir, 'hosts');
      fs.writeFileSync(f, '# cluster\nnode1 slots=2\nnode2:3  # fast\n\nnode3\n');
      expect(parseHostfile(f)).toEqual([
        { host: 'node1', slots: 2 },
        { host: 'node2', slots: 3 },
        { host: 'node3', slots: 1 },
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('knows its own names', () => {
    expect(isLocalHost('localhost')).toBe(true);
    expect(isLocalHost(os.hostname())).toBe(true);
    expect(isLocalHost('elsewhere.example')).toBe(false);
  });

  it('parses run options and refuses bad ones', () => {
    const o = parseRunArgs(['-n', '4', '--host', 'x:2,y', '--launcher', 'ip netns exec', '-x', 'A=1', 'prog.mjs', '--flag', 'v']);
    expect(o).toMatchObject({ np: 4, launcher: 'ip netns exec', env: { A: '1' }, program: 'prog.mjs', args: ['--flag', 'v'] });
    expect(() => parseRunArgs(['-n', 'x', 'p.js'])).toThrow(UsageError);
    expect(() => parseRunArgs(['--bogus', 'p.js'])).toThrow(UsageError);
    expect(() => parseRunArgs(['-n', '2'])).toThrow(/no program/);
  });
});
