// librdmacm through the addon: on a machine without RDMA CM support the
// status says why and creating a channel is a typed error, not a crash.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IbalError, ResourceClosedError } from '../src/errors.js';
import { QpType } from '../src/enums.js';
import { RdmaEventChannel, rdmacmProbe } from '../src/native/rdmacm.js';
import { nativeStatus } from '../src/native/status.js';

const headers = fs.existsSync('/usr/include/rdma/rdma_cma.h');

describe('native librdmacm', () => {
  const probe = rdmacmProbe();

  it('nativeStatus reports the same rdmacm state as a direct probe', () => {
    expect(nativeStatus().rdmacm).toEqual(probe);
    if (!probe.on) expect(probe.reason).toMatch(/librdmacm|ibal_verbs/);
  });

  it.runIf(headers && !probe.on)('creating an event channel without RDMA CM support throws a typed error', () => {
    let caught: unknown;
    try {
      new RdmaEventChannel(() => {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(IbalError);
    expect((caught as Error).message).toMatch(/rdma_create_event_channel/);
  });

  it.runIf(probe.on)('creates and destroys ids; a closed channel refuses use', () => {
    const ch = new RdmaEventChannel(() => {});
    const rc = ch.createId(QpType.RC);
    const ud = ch.createId(QpType.UD);
    expect(rc).not.toBe(ud);
    expect(ch.info(rc).device).toBeNull();
    ch.destroyId(rc);
    expect(() => ch.destroyId(rc)).toThrow(ResourceClosedError);
    ch.close();
    expect(() => ch.createId(QpType.RC)).toThrow(ResourceClosedError);
  });
});
