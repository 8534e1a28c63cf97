// nativeStatus(): which native features are on here and, for each one that
// is off, why: the addon itself, libibverbs devices, librdmacm.
import { tryVerbs, verbsUnavailableReason } from './load.js';
import { rdmacmProbe } from './rdmacm.js';

export interface NativeFeature {
  on: boolean;
  /** Why the feature is off (or, when on, a detail such as the device count). */
  reason?: string;
}

export interface NativeStatus {
  /** The ibal_verbs addon (libibverbs bound through node-addon-api). */
  addon: NativeFeature;
  /** The native verbs provider: on when libibverbs lists at least one device. */
  verbs: NativeFeature;
  /** Devices libibverbs lists (0 without an HCA). */
  deviceCount: number;
  deviceNames: string[];
  /** librdmacm (connection manager for native devices). */
  rdmacm: NativeFeature;
}

function noDeviceReason(errno: number, code: string): string {
  if (errno === 38 /* ENOSYS */) {
    return 'libibverbs found no RDMA device: the kernel has no RDMA support here (ENOSYS: no uverbs, /sys/class/infiniband is absent)';
  }
  if (errno !== 0) return `libibverbs could not list devices (${code})`;
  return 'libibverbs found no RDMA device (no HCA, and no rxe/siw link configured)';
}

/** Lists devices afresh each call (hot-plug and `rdma link add` change the list). */
export function nativeStatus(): NativeStatus {
  const addon = tryVerbs();
  if (!addon) {
    const off = { on: false, reason: verbsUnavailableReason() };
    return { addon: off, verbs: off, deviceCount: 0, deviceNames: [], rdmacm: off };
  }
  const { devices, errno, code } = addon.getDevices();
  const verbs: NativeFeature =
    devices.length > 0 ? { on: true, reason: `${devices.length} device(s)` } : { on: false, reason: noDeviceReason(errno, code) };
  const rdmacm = rdmacmProbe();
  return { addon: { on: true }, verbs, deviceCount: devices.length, deviceNames: devices.map((d) => d.name), rdmacm };
}
