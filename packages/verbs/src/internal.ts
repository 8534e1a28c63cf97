// Symbols for what verbs classes share among themselves but users should not
// reach: the provider handle each wrapper owns, and the hooks a completion
// channel and its CQs use to hand events to each other. The package exports
// only src/index.ts, which does not re-export these.

/** The provider object (HcaPd, HcaQp, ...) a wrapper owns. */
export const kHandle: unique symbol = Symbol('ibal.handle');
/** Context: the device attributes, queried once, for argument checks. */
export const kLimits: unique symbol = Symbol('ibal.limits');
/** CompChannel: a CQ it serves has fired. */
export const kDeliver: unique symbol = Symbol('ibal.deliver');
/** CompChannel: a CQ is being destroyed; forget its undelivered events. */
export const kForget: unique symbol = Symbol('ibal.forget');
/** CQ: getCqEvent handed out one of its events, which now needs an ack. */
export const kEventTaken: unique symbol = Symbol('ibal.eventTaken');
/** MW: qp.bindMw posted a type 1 bind with this key (ibv_bind_mw updates mw->rkey). */
export const kSetRkey: unique symbol = Symbol('ibal.setRkey');
/** QP: run this once the QP is destroyed (its QpEx's staging memory goes with it). */
export const kOnDestroy: unique symbol = Symbol('ibal.onDestroy');
