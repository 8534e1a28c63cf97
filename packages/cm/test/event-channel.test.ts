// The event channel and id lifetime rules, without any traffic.
import { describe, expect, it } from 'vitest';
import { ResourceBusyError, ResourceClosedError, InvalidArgumentError } from '@ibal/verbs';
import { CmStateError, createEventChannel, createId, PortSpace, parseAddress, parseServiceId, serviceId } from '../src/index.js';

describe('event channel and ids', () => {
  it('getCmEvent times out with a TimeoutError; a channel with live ids refuses destroy; destroyed ids refuse calls', async () => {
    const ch = createEventChannel();
    await expect(ch.getCmEvent({ timeoutMs: 10 })).rejects.toMatchObject({ name: 'TimeoutError' });
    const id = createId(ch);
    expect(() => ch.destroy()).toThrow(ResourceBusyError);
    expect(() => id.connect()).toThrow(CmStateError);
    expect(() => id.listen()).toThrow(CmStateError);
    expect(() => id.disconnect()).toThrow(CmStateError);
    expect(() => id.createQp()).toThrow(CmStateError);
    id.destroy();
    expect(() => id.resolveRoute()).toThrow(ResourceClosedError);
    ch.destroy();
    expect(() => createId(ch)).toThrow(ResourceClosedError);
  });

  it('migrateId moves queued events; ADDR_ERROR names why no device fits', async () => {
    const a = createEventChannel();
    const b = createEventChannel();
    const id = createId(a, { device: 'no-such-device' });
    id.resolveAddr('127.0.0.1:1');
    await new Promise((r) => setTimeout(r, 20));
    expect(a.pending).toBe(1);
    id.migrateId(b);
    expect(a.pending).toBe(0);
    const ev = await b.getCmEvent({ timeoutMs: 1000 });
    expect(ev.eventName).toBe('ADDR_ERROR');
    expect(ev.reason).toMatch(/no-such-device/);
    id.destroy();
    a.destroy();
    b.destroy();
  });

  it('service IDs and addresses', () => {
    expect(serviceId(PortSpace.TCP, 7471)).toBe(0x0000000001061d2fn);
    expect(serviceId(PortSpace.UDP, 1)).toBe(0x0000000001110001n);
    expect(serviceId(PortSpace.SDP, 80)).toBe(0x0000000000010050n);
    expect(parseServiceId(0x0000000001061d2fn)).toEqual({ portSpace: PortSpace.TCP, port: 7471 });
    expect(parseServiceId(0x1234000001061d2fn)).toBeUndefined();
    expect(parseAddress('[::1]:80')).toEqual({ address: '::1', port: 80 });
    expect(() => parseAddress('localhost:80')).toThrow(InvalidArgumentError);
    expect(() => createId(createEventChannel(), { portSpace: 0x999 })).toThrow(InvalidArgumentError);
    expect(() => createId(createEventChannel(), { maxCmRetries: 16 })).toThrow(InvalidArgumentError);
  });
});
