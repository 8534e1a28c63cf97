// libibumad for TypeScript: a registered agent sends and receives the MADs
// of one management class through the port's GSI (QP1). The communication
// manager (@ibal/cm) is its main user, as the kernel CM is libibumad's peer.

import { InvalidArgumentError, NotFoundError } from '@ibal/hca';
import type { HcaMadAgent, MadAddress, MadAgentCounters } from '@ibal/hca';
import type { Context } from './context.js';
import { kHandle } from './internal.js';
import { Resource } from './resource.js';

export interface MadAgentOptions {
  /** Default 1. */
  portNum?: number;
  mgmtClass: number;
  classVersion: number;
}

export class MadAgent extends Resource {
  readonly context: Context;
  readonly mgmtClass: number;
  readonly classVersion: number;
  readonly #hca: HcaMadAgent;

  /** @internal Use registerMadAgent(). */
  constructor(context: Context, opts: MadAgentOptions, hca: HcaMadAgent) {
    super([context]);
    this.context = context;
    this.mgmtClass = opts.mgmtClass;
    this.classVersion = opts.classVersion;
    this.#hca = hca;
  }

  describe(): string {
    return `MadAgent class 0x${this.mgmtClass.toString(16)}`;
  }

  get counters(): Readonly<MadAgentCounters> {
    return this.#hca.counters;
  }

  /** umad_send without retries: one 256-byte MAD to `dest` (QP1 of a remote port, normally). */
  send(mad: Uint8Array, dest: MadAddress): void {
    this.assertOpen();
    this.#hca.send(mad, dest);
  }

  /** umad_unregister. */
  unregister(): void {
    this.closeWith('unregister', () => this.#hca.unregister());
  }

  [Symbol.dispose](): void {
    this.unregister();
  }
}

/**
 * umad_register: `onMad` receives every MAD of the class and version that
 * arrives on the port (a private 256-byte copy and its source address),
 * asynchronously to the device's receive path.
 */
export function registerMadAgent(context: Context, opts: MadAgentOptions, onMad: (mad: Uint8Array, src: MadAddress) => void): MadAgent {
  context.assertOpen();
  if (typeof opts !== 'object' || opts === null) throw new InvalidArgumentError('registerMadAgent: opts must be an object');
  const hca = context[kHandle];
  if (!hca.registerMadAgent) {
    throw new NotFoundError(`${context.device.name}: the ${context.device.provider} provider gives no GSI access (QP1 belongs to its kernel; use librdmacm)`);
  }
  const full = { portNum: opts.portNum ?? 1, mgmtClass: opts.mgmtClass, classVersion: opts.classVersion };
  return new MadAgent(context, full, hca.registerMadAgent(full, onMad));
}
