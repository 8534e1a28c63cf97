// Async events (ibv_get_async_event) as verbs objects see them: providers
// report their own handles, users need the QP/CQ/SRQ wrapper they created.

import type { AsyncEvent as HcaAsyncEvent } from '@ibal/hca';
import { eventTypeName } from '@ibal/hca';
import type { CQ } from './cq.js';
import type { QP } from './qp.js';
import type { SRQ } from './srq.js';

export interface AsyncEvent {
  /** An EventType value. */
  eventType: number;
  /** Its libibverbs name without the IBV_EVENT_ prefix, e.g. "QP_FATAL". */
  eventName: string;
  qp?: QP;
  cq?: CQ;
  srq?: SRQ;
  portNum?: number;
}

type Wrapper = QP | CQ | SRQ;

// Weak so a destroyed wrapper is collectable once the provider drops its handle.
const wrappers = new WeakMap<object, Wrapper>();

export function bindWrapper(handle: object, wrapper: Wrapper): void {
  wrappers.set(handle, wrapper);
}

export function toAsyncEvent(ev: HcaAsyncEvent): AsyncEvent {
  const out: AsyncEvent = { eventType: ev.eventType, eventName: eventTypeName(ev.eventType) };
  if (ev.qp) out.qp = wrappers.get(ev.qp) as QP | undefined;
  if (ev.cq) out.cq = wrappers.get(ev.cq) as CQ | undefined;
  if (ev.srq) out.srq = wrappers.get(ev.srq) as SRQ | undefined;
  if (ev.portNum !== undefined) out.portNum = ev.portNum;
  return out;
}
