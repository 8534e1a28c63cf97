// bench.md: one row per size and the headline ratios.

const fmt = (v, digits) => (v === null || v === undefined ? 'n/a' : v.toFixed(digits));

export function sizeLabel(size) {
  if (size >= 1 << 20 && size % (1 << 20) === 0) return `${size / (1 << 20)} MiB`;
  if (size >= 1024 && size % 1024 === 0) return `${size / 1024} KiB`;
  return `${size} B`;
}

export function markdown(r) {
  const m = (series, size) => series.median[size] ?? null;
  const lines = [
    `# ibal bench (${r.meta.date})`,
    '',
    `Two processes on 127.0.0.1; Node ${r.meta.node}, ${r.meta.cpus} CPUs (${r.meta.cpuModel}); medians of ${r.meta.reps} runs.`,
    'MB = 2^20 bytes. RDMA WRITE: `ibal perf write --bw` BW average; SEND latency: `ibal perf send --lat` t_typical',
    '(median of half round trips); TCP: Node `net` on loopback, streaming writes and a ping-pong (median half round trip).',
    '',
    '| size | WRITE MB/s | TCP MB/s | SEND lat µs | TCP lat µs |',
    '|---:|---:|---:|---:|---:|',
  ];
  for (const size of r.meta.sizes) {
    lines.push(
      `| ${sizeLabel(size)} | ${fmt(m(r.writeBw, size), 1)} | ${fmt(m(r.tcpBw, size), 1)} | ${fmt(m(r.sendLat, size), 1)} | ${fmt(m(r.tcpLat, size), 1)} |`,
    );
  }
  const u = r.udpBlast.median;
  lines.push(
    '',
    `UDP blast, 4 KiB datagrams, measured at the receiver: ${fmt(u.MBps, 1)} MB/s (${fmt(u.datagramsPerSec, 0)} datagrams/s).`,
    '',
    '| headline | value |',
    '|---|---:|',
    `| RDMA WRITE 1 MiB bw / UDP 4 KiB blast bw | ${fmt(r.headline.writeVsUdp, 3)} |`,
    `| SEND 8 B latency / TCP 8 B latency | ${fmt(r.headline.sendVsTcpLatency, 3)} |`,
  );
  const errors = [
    ...r.writeBw.errors.map((e) => `WRITE bw: ${e}`),
    ...r.sendLat.errors.map((e) => `SEND lat: ${e}`),
    ...r.tcpBw.errors.map((e) => `TCP: ${e}`),
    ...r.udpBlast.errors.map((e) => `UDP: ${e}`),
  ];
  if (errors.length > 0) lines.push('', '## Errors', '', ...errors.map((e) => `- ${e.replace(/\n/g, ' ')}`));
  return lines.join('\n') + '\n';
}
