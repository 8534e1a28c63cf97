// A quick answer to "does anything listen at that UDP port?" for transparent
// mode's fallback. The CM can only learn that no RDMA device sits behind an
// address by waiting out its REQ retries (over a second); a host whose port
// is closed says so at once with ICMP port unreachable, which Linux reports
// to a connected UDP socket as ECONNREFUSED. So, beside the CM's REQ, one
// empty datagram goes to the device's port from a socket of its own (the
// soft HCA drops empty datagrams uncounted as packets: see its rxEmpty). No
// answer (a firewall, or someone listening) proves nothing, and the CM goes on.
import dgram from 'node:dgram';
import net from 'node:net';

export interface UdpProbe {
  /** Resolves true once the port is known closed; false when the window passed or the probe was stopped. */
  readonly refused: Promise<boolean>;
  stop(): void;
}

export function probeUdpPort(host: string, port: number, windowMs: number): UdpProbe {
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  let settle: (refused: boolean) => void = () => {};
  const refused = new Promise<boolean>((resolve) => (settle = resolve));
  let done = false;
  const finish = (r: boolean): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    settle(r);
    try {
      sock.close();
    } catch {
      // Already closed.
    }
  };
  const timer = setTimeout(() => finish(false), windowMs);
  timer.unref();
  sock.unref();
  sock.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED'));
  // An ICMP error is only reported to a connected socket; it arrives as a receive error.
  sock.on('message', () => {});
  sock.connect(port, host, () => {
    if (!done) sock.send(Buffer.alloc(0), (err) => err && finish((err as NodeJS.ErrnoException).code === 'ECONNREFUSED'));
  });
  return { refused, stop: () => finish(false) };
}
