// Test helpers for the soft HCA at the provider level: two devices on
// loopback, one RC/UC/UD QP on each, connected as ibv_rc_pingpong connects them.
import { Access, Mtu, QpAttrMask as M, QpState, QpType } from '../../src/enums.js';
import type { HcaContext, HcaCq, HcaMr, HcaPd, HcaQp, SendWr, WorkCompletion } from '../../src/provider.js';
import { newWorkCompletion } from '../../src/provider.js';
import { addSoftDevice, type SoftDevice, type SoftDeviceOptions } from '../../src/soft/device.js';

let n = 0;

export interface Side {
  dev: SoftDevice;
  ctx: HcaContext;
  pd: HcaPd;
  cq: HcaCq;
  qp: HcaQp;
  mr: HcaMr;
  notify: () => void;
  /** UD destination for sends, when the test has one. */
  ud?: SendWr['ud'];
}

export interface PairOptions {
  /** Address both devices bind; default 127.0.0.1. */
  address?: string;
  qpType?: number;
  size?: number;
  cqe?: number;
  maxSendWr?: number;
  maxRecvWr?: number;
  access?: number;
  timeout?: number;
  retryCnt?: number;
  rnrRetry?: number;
  minRnrTimer?: number;
  mtu?: number;
  psnA?: number;
  psnB?: number;
  faultsA?: SoftDeviceOptions['faults'];
  faultsB?: SoftDeviceOptions['faults'];
  /** Register memory the provider allocates (pd.allocBuffer), as regMr(pd, length) does. */
  providerMemory?: boolean;
}

const ALL = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;

export async function side(opts: PairOptions, faults?: SoftDeviceOptions['faults']): Promise<Side> {
  const dev = addSoftDevice({ name: `t${process.pid}_${n++}`, address: opts.address ?? '127.0.0.1', port: 0, faults });
  const ctx = await dev.open();
  const pd = ctx.allocPd();
  const waiters: (() => void)[] = [];
  const s = { dev, ctx, pd } as unknown as Side;
  s.notify = () => waiters.splice(0).forEach((w) => w());
  s.cq = ctx.createCq(opts.cqe ?? 4096, () => s.notify());
  (s as Side & { waiters: (() => void)[] }).waiters = waiters;
  s.qp = pd.createQp({
    qpType: opts.qpType ?? QpType.RC,
    sendCq: s.cq,
    recvCq: s.cq,
    cap: { maxSendWr: opts.maxSendWr ?? 1024, maxRecvWr: opts.maxRecvWr ?? 1024, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 256 },
  });
  const size = opts.size ?? 1 << 20;
  s.mr = pd.regMr(opts.providerMemory ? pd.allocBuffer(size) : new Uint8Array(size), opts.access ?? ALL);
  return s;
}

export function connect(a: Side, b: Side, opts: PairOptions): void {
  const qpType = opts.qpType ?? QpType.RC;
  const wire = (s: Side) => ({ dgid: s.ctx.queryGid(1, 0), udpPort: s.ctx.queryPort(1).udpPort });
  for (const [x, y, sq, rq] of [
    [a, b, opts.psnA ?? 0x100, opts.psnB ?? 0x200],
    [b, a, opts.psnB ?? 0x200, opts.psnA ?? 0x100],
  ] as const) {
    if (qpType === QpType.UD) {
      x.qp.modify({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qkey: 0x11111111 }, M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY);
      x.qp.modify({ qpState: QpState.RTR }, M.STATE);
      x.qp.modify({ qpState: QpState.RTS, sqPsn: sq }, M.STATE | M.SQ_PSN);
      continue;
    }
    x.qp.modify(
      { qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: opts.access ?? (Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC) },
      M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS,
    );
    const rtr = M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | (qpType === QpType.RC ? M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER : 0);
    x.qp.modify(
      { qpState: QpState.RTR, ahAttr: wire(y), pathMtu: opts.mtu ?? Mtu.MTU_4096, destQpNum: y.qp.qpNum, rqPsn: rq, maxDestRdAtomic: 16, minRnrTimer: opts.minRnrTimer ?? 1 },
      rtr,
    );
    const rts = M.STATE | M.SQ_PSN | (qpType === QpType.RC ? M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC : 0);
    x.qp.modify(
      { qpState: QpState.RTS, sqPsn: sq, timeout: opts.timeout ?? 12, retryCnt: opts.retryCnt ?? 7, rnrRetry: opts.rnrRetry ?? 7, maxRdAtomic: 16 },
      rts,
    );
  }
}

export async function pair(opts: PairOptions = {}): Promise<[Side, Side]> {
  const a = await side(opts, opts.faultsA);
  const b = await side(opts, opts.faultsB);
  connect(a, b, opts);
  return [a, b];
}

/** Wait for `count` completions on `s.cq`, bounded by `ms`. */
export async function completions(s: Side, count: number, ms = 10_000): Promise<WorkCompletion[]> {
  const out: WorkCompletion[] = [];
  const buf = Array.from({ length: 64 }, newWorkCompletion);
  const deadline = Date.now() + ms;
  while (out.length < count) {
    const got = s.cq.poll(Math.min(64, count - out.length), buf);
    for (let i = 0; i < got; i++) out.push({ ...buf[i]! });
    if (out.length >= count) break;
    if (Date.now() > deadline) throw new Error(`timed out with ${out.length}/${count} completions`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 20);
      (s as Side & { waiters: (() => void)[] }).waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
      s.cq.reqNotify(false);
    });
  }
  return out;
}

export function close(...sides: Side[]): void {
  for (const s of sides) s.dev.remove();
}

/** Bring `s.qp` to RTS against a remote QP known by its GID, UDP port, QPN and PSN. */
export function connectRemote(s: Side, remote: { gid: string; port: number; qpn: number; psn: number }, opts: PairOptions & { sqPsn: number }): void {
  const qpType = opts.qpType ?? QpType.RC;
  const qp = s.qp;
  if (qpType === QpType.UD) {
    qp.modify({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qkey: 0x11111111 }, M.STATE | M.PKEY_INDEX | M.PORT | M.QKEY);
    qp.modify({ qpState: QpState.RTR }, M.STATE);
    qp.modify({ qpState: QpState.RTS, sqPsn: opts.sqPsn }, M.STATE | M.SQ_PSN);
    return;
  }
  const rc = qpType === QpType.RC;
  qp.modify({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC }, M.STATE | M.PKEY_INDEX | M.PORT | M.ACCESS_FLAGS);
  qp.modify(
    { qpState: QpState.RTR, ahAttr: { dgid: Buffer.from(remote.gid, 'hex'), udpPort: remote.port }, pathMtu: opts.mtu ?? Mtu.MTU_4096, destQpNum: remote.qpn, rqPsn: remote.psn, maxDestRdAtomic: 16, minRnrTimer: 1 },
    M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | (rc ? M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER : 0),
  );
  qp.modify(
    { qpState: QpState.RTS, sqPsn: opts.sqPsn, timeout: opts.timeout ?? 14, retryCnt: opts.retryCnt ?? 7, rnrRetry: opts.rnrRetry ?? 7, maxRdAtomic: 16 },
    M.STATE | M.SQ_PSN | (rc ? M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC : 0),
  );
}
