// What every ping-pong opens before its QPs, in the C examples' order (the
// device, the completion channel for -e, a PD, the one buffer every send and
// receive uses, one CQ), each registered with the cleanup as it is created.
import { Access, regMr, type CQ, type CompChannel, type Context, type MR, type PD, type PortAttr } from '@ibal/verbs';
import type { Cleanup } from '../cleanup.js';
import { openContext, queryPortOrFail } from '../device.js';
import type { PingpongOptions } from './options.js';

export interface PingpongBase {
  ctx: Context;
  port: PortAttr;
  channel: CompChannel | undefined;
  pd: PD;
  mr: MR;
  cq: CQ;
}

/** `check` refuses what the port cannot do before anything else is created. */
export async function openPingpongBase(
  o: PingpongOptions,
  cleanup: Cleanup,
  sizes: { bufferBytes: number; cqDepth: number },
  check: (port: PortAttr) => void = () => {},
): Promise<PingpongBase> {
  const ctx = await openContext(o.ibDev);
  cleanup.add(() => ctx.close());
  const port = queryPortOrFail(ctx, o.ibPort);
  check(port);
  let channel: CompChannel | undefined;
  if (o.events) {
    const ch = ctx.createCompChannel();
    channel = ch;
    cleanup.add(() => ch.destroy());
  }
  const pd = ctx.allocPd();
  cleanup.add(() => pd.dealloc());
  const mr = regMr(pd, sizes.bufferBytes, Access.LOCAL_WRITE);
  cleanup.add(() => mr.dereg());
  const cq = ctx.createCq(sizes.cqDepth, { channel });
  cleanup.add(() => cq.destroy());
  return { ctx, port, channel, pd, mr, cq };
}

/** Posts receives with `post` until `n` are in or one is refused; how many went in (pp_post_recv). */
export function postUpTo(n: number, post: () => void): number {
  for (let i = 0; i < n; i++) {
    try {
      post();
    } catch {
      return i;
    }
  }
  return n;
}
