import type { HcaDevice } from '../provider.js';
import { NativeContext } from './context.js';
import type { VerbsAddon } from './load.js';

/** A device libibverbs lists (an ibv_device). */
export class NativeDevice implements HcaDevice {
  readonly provider = 'native';

  constructor(
    private readonly addon: VerbsAddon,
    readonly name: string,
    readonly guid: bigint,
    readonly nodeType: number,
  ) {}

  async open(): Promise<NativeContext> {
    return new NativeContext(this, this.addon);
  }
}
