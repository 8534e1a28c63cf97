// ibv_ah: an address handle, the destination of UD sends.

import { NotFoundError, validateAhAttr } from '@ibal/hca';
import type { AhAttr, HcaAh } from '@ibal/hca';
import { kHandle, kLimits } from './internal.js';
import { checkPd, type PD } from './pd.js';
import { Resource } from './resource.js';

export class AH extends Resource {
  readonly pd: PD;
  readonly [kHandle]: HcaAh;

  /** @internal Use createAh(). */
  constructor(pd: PD, hca: HcaAh) {
    super([pd]);
    this.pd = pd;
    this[kHandle] = hca;
  }

  describe(): string {
    return 'AH';
  }

  get attr(): Readonly<AhAttr> {
    this.assertOpen();
    return this[kHandle].attr;
  }

  /** ibv_destroy_ah. */
  destroy(): void {
    this.closeWith('destroy', () => this[kHandle].destroy());
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

/** ibv_create_ah. The port defaults to 1. */
export function createAh(pd: PD, attr: AhAttr): AH {
  checkPd(pd, 'createAh');
  validateAhAttr(attr, 'createAh: attr');
  const portNum = attr.portNum ?? 1;
  const ports = pd.context[kLimits].physPortCnt;
  if (portNum > ports) throw new NotFoundError(`createAh: port ${portNum} does not exist (the device has ports 1..${ports})`);
  // The provider keeps what it is given; a private copy stops later edits
  // of the caller's object (or its dgid bytes) from changing the handle.
  const own: AhAttr = { ...attr, dgid: Uint8Array.from(attr.dgid), portNum };
  return new AH(pd, pd[kHandle].createAh(own));
}
