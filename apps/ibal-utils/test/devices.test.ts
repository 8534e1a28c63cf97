import { rawSocketsAvailable, sysStatus } from '@ibal/hca';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, runCli } from './helpers/cli.js';

afterEach(killAll);

const twoDevices = { IBAL_SOFT_DEVICES: 'alpha=127.0.0.1:0,beta=127.0.0.1:0' };

describe('ibal devices', () => {
  it('lists every device with a 16-digit node GUID, as ibv_devices', async () => {
    const r = await runCli(['devices'], twoDevices);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`    ${'device'.padEnd(16)}\t   node GUID`);
    expect(lines[1]).toBe(`    ${'------'.padEnd(16)}\t----------------`);
    expect(lines.slice(2)).toHaveLength(2);
    expect(lines[2]).toMatch(/^ {4}alpha {11}\t[0-9a-f]{16}$/);
    expect(lines[3]).toMatch(/^ {4}beta {12}\t[0-9a-f]{16}$/);
  });
});

describe('ibal devinfo', () => {
  it('prints the ibv_devinfo fields, then the provider, the wire and the native features', async () => {
    const r = await runCli(['devinfo', '-d', 'beta'], twoDevices);
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^hca_id:\tbeta\n/);
    expect(out).not.toContain('alpha');
    for (const re of [
      /\ttransport:\t\t\tInfiniBand \(0\)\n/,
      /\tfw_ver:\t\t\t\t\S+\n/,
      /\tnode_guid:\t\t\t[0-9a-f]{4}:[0-9a-f]{4}:[0-9a-f]{4}:[0-9a-f]{4}\n/,
      /\tsys_image_guid:\t\t\t[0-9a-f]{4}(:[0-9a-f]{4}){3}\n/,
      /\tvendor_id:\t\t\t0x[0-9a-f]{4}\n/,
      /\tvendor_part_id:\t\t\t\d+\n/,
      /\thw_ver:\t\t\t\t0x[0-9A-F]+\n/,
      /\tphys_port_cnt:\t\t\t1\n/,
      /\t\tport:\t1\n/,
      /\t\t\tstate:\t\t\tPORT_ACTIVE \(4\)\n/,
      /\t\t\tmax_mtu:\t\t4096 \(5\)\n/,
      /\t\t\tactive_mtu:\t\t\d+ \(\d\)\n/,
      /\t\t\tsm_lid:\t\t\t0\n/,
      /\t\t\tport_lid:\t\t0\n/,
      /\t\t\tport_lmc:\t\t0x00\n/,
      /\t\t\tlink_layer:\t\tEthernet\n/,
      /\tprovider:\t\t\tsoft\n/,
      /\twire:\t\t\t\tudp4( \(sendmmsg\))? 127\.0\.0\.1:\d+\n/,
      /\nnative features:\n\tnative verbs provider:\t(on|off) \(.+\)\n\trdmacm:\t(on|off)( \(.+\))?\n/,
      /\tibal_sys addon:\t(on|off)/,
    ]) {
      expect(out).toMatch(re);
    }
    // The port is the ephemeral one the device bound, not 4791.
    expect(out).not.toMatch(/wire:\t+udp4( \(sendmmsg\))? 127\.0\.0\.1:0\n/);
    // Batched when the ibal_sys addon can (IBAL_SOFT_WIRE unset: UDP).
    const udp = sysStatus().mmsg.on ? 'udp4 (sendmmsg)' : 'udp4';
    expect(out).toContain(`\twire:\t\t\t\t${udp} 127.0.0.1:`);
    // Without -v, no capabilities and no GIDs.
    expect(out).not.toContain('max_qp:');
    expect(out).not.toContain('GID[');
  });

  const raw = rawSocketsAvailable();
  it('says which wire each device uses: raw4 under IBAL_SOFT_WIRE=raw, UDP for IPv6, and why raw is refused', async () => {
    const env = { IBAL_SOFT_DEVICES: 'v4=127.0.0.1:0,v6=[::1]:0', IBAL_SOFT_WIRE: 'raw' };
    const r = await runCli(['devinfo'], env);
    if (raw.ok) {
      expect(r.code, r.stderr).toBe(0);
      const v4 = r.stdout.slice(r.stdout.indexOf('hca_id:\tv4'), r.stdout.indexOf('hca_id:\tv6'));
      const v6 = r.stdout.slice(r.stdout.indexOf('hca_id:\tv6'));
      expect(v4).toMatch(/\twire:\t\t\t\traw4 127\.0\.0\.1:\d+\n/);
      expect(v6).toMatch(/\twire:\t\t\t\tudp6( \(sendmmsg\))? \[[0:]+1\]:\d+\n/);
      expect(r.stdout).toMatch(/\traw RoCEv2 sockets:\ton\n/);
    } else {
      // Opening the IPv4 device fails with the typed error's reason.
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`Failed to open device v4: IBAL_SOFT_WIRE=raw: the raw RoCEv2 wire is unavailable: ${raw.reason}`);
    }
    // The same with the addon off: refused, and the reason named.
    const off = await runCli(['devinfo', '-d', 'v4'], { ...env, IBAL_SYS: '0' });
    expect(off.code).not.toBe(0);
    expect(off.stderr).toContain('Failed to open device v4: IBAL_SOFT_WIRE=raw: the raw RoCEv2 wire is unavailable: disabled by IBAL_SYS=0');
    const auto = await runCli(['devinfo', '-d', 'v4'], { ...env, IBAL_SYS: '0', IBAL_SOFT_WIRE: 'auto' });
    expect(auto.code, auto.stderr).toBe(0);
    expect(auto.stdout).toMatch(/\twire:\t\t\t\tudp4 127\.0\.0\.1:\d+\n/);
  });

  it('-v adds the device capabilities and the GID table', async () => {
    const r = await runCli(['devinfo', '-v', '-d', 'alpha'], twoDevices);
    expect(r.code).toBe(0);
    for (const re of [
      /\tmax_qp:\t\t\t\t\d+\n/,
      /\tmax_qp_wr:\t\t\t\d+\n/,
      /\tmax_sge:\t\t\t\d+\n/,
      /\tmax_cq:\t\t\t\t\d+\n/,
      /\tmax_cqe:\t\t\t\d+\n/,
      /\tmax_mr:\t\t\t\t\d+\n/,
      /\tmax_mw:\t\t\t\t[1-9]\d*\n/,
      /\tcompletion timestamp_mask:\t\t\t0x001fffffffffffff\n/,
      /\thca_core_clock:\t\t\t1000000kHZ\n/,
      /\tmax_pd:\t\t\t\t\d+\n/,
      /\tmax_qp_rd_atom:\t\t\t\d+\n/,
      /\tmax_srq:\t\t\t\d+\n/,
      /\tmax_srq_wr:\t\t\t\d+\n/,
      /\tatomic_cap:\t\t\tATOMIC_(NONE|HCA|GLOB) \(\d\)\n/,
      /\t\t\tGID\[ {2}0\]:\t\t::ffff:127\.0\.0\.1, RoCE v2\n/,
    ]) {
      expect(r.stdout).toMatch(re);
    }
  });

  it('-l lists the device names; an unknown -d fails with the C message', async () => {
    const l = await runCli(['devinfo', '-l'], twoDevices);
    expect(l.code).toBe(0);
    expect(l.stdout).toBe('2 HCAs found:\n\talpha\n\tbeta\n\n');
    const bad = await runCli(['devinfo', '-d', 'nosuch'], twoDevices);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("IB device 'nosuch' wasn't found");
  });
});
