// Lazy loader of the ibal_verbs addon (native/verbs). Importing @ibal/hca
// never loads it: libibverbs is dlopened the first time native devices are
// listed. When it cannot be loaded every caller gets the reason.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAYOUT } from './wr-buffer.js';

export interface NativeDeviceInfo {
  name: string;
  guid: bigint;
  nodeType: number;
  transportType: number;
}

export interface NativePostError {
  errno: number;
  code: string;
  why: string;
}

export interface NativeQpCreated {
  id: number;
  qpNum: number;
  cap: { maxSendWr: number; maxRecvWr: number; maxSendSge: number; maxRecvSge: number; maxInlineData: number };
  sendBuf: ArrayBuffer;
  sendMaxSge: number;
  recvBuf?: ArrayBuffer;
  recvMaxSge?: number;
  batch: number;
}

/** The addon's Context: one open ibv_context, resources named by ids. */
export interface NativeContextHandle {
  queryDevice(): Record<string, number | bigint | string>;
  queryDeviceEx(): { completionTimestampMask: bigint; hcaCoreClock: number; deviceCapFlagsEx: bigint; physPortCntEx: number };
  queryPort(port: number): Record<string, number>;
  queryGid(port: number, index: number): Uint8Array;
  allocPd(): number;
  deallocPd(pd: number): void;
  regMr(pd: number, buffer: ArrayBuffer, offset: number, length: number, access: number): { id: number; lkey: number; rkey: number; addr: number };
  deregMr(mr: number): void;
  mrInflight(mr: number): number;
  attachMcast(qp: number, gid: Uint8Array, lid: number): void;
  detachMcast(qp: number, gid: Uint8Array, lid: number): void;
  allocMw(pd: number, type: number): { id: number; rkey: number };
  deallocMw(mw: number): void;
  /** ibv_bind_mw; returns the window's new rkey. */
  bindMw(qp: number, mw: number, wrId: number, sendFlags: number, mr: number, addr: number, length: number, access: number): number;
  createCq(cqe: number): { id: number; cqe: number; out: ArrayBuffer };
  destroyCq(cq: number): void;
  resizeCq(cq: number, cqe: number): number;
  reqNotifyCq(cq: number, solicitedOnly: boolean): void;
  pollCq(cq: number, n: number): number;
  createQp(pd: number, init: { qpType: number; sendCq: number; recvCq: number; srq?: number; cap: object; sqSigAll: boolean }): NativeQpCreated;
  modifyQp(qp: number, attr: object, mask: number): void;
  queryQp(qp: number): Record<string, unknown>;
  destroyQp(qp: number): void;
  postSend(qp: number, count: number): number;
  postRecv(qp: number, count: number): number;
  createSrq(pd: number, attr: { maxWr: number; maxSge: number; srqLimit: number }): { id: number; maxWr: number; maxSge: number; recvBuf: ArrayBuffer; recvMaxSge: number; batch: number };
  modifySrq(srq: number, attr: object, mask: number): void;
  querySrq(srq: number): { maxWr: number; maxSge: number; srqLimit: number };
  postSrqRecv(srq: number, count: number): number;
  destroySrq(srq: number): void;
  createAh(pd: number, attr: object): number;
  destroyAh(ah: number): void;
  lastPostError(): NativePostError;
  close(): void;
}

export interface VerbsAddon {
  getDevices(): { devices: NativeDeviceInfo[]; errno: number; code: string };
  allocBuffer(length: number): ArrayBuffer;
  isBindingBuffer(buffer: ArrayBuffer): boolean;
  Context: new (
    name: string,
    onCqEvent: (cq: number) => void,
    onAsyncEvent: (type: number, kind: number, id: number) => void,
  ) => NativeContextHandle;
  layout: Record<string, number>;
  testDecodeSendWrs(buffer: ArrayBuffer, count: number, maxSge: number, ud: boolean, liveIds: number[]): { wrs: Record<string, unknown>[]; bad: number; why: string };
  testDecodeRecvWrs(buffer: ArrayBuffer, count: number, maxSge: number): { wrs: Record<string, unknown>[]; bad: number; why: string };
  testTranslateWc(wc: Record<string, number>, posted: { wrId: number; send: boolean; wrOpcode?: number; length?: number }, out: ArrayBuffer): void;
  /** librdmacm, present when the addon was built with it. */
  rdmacm?: unknown;
}

let cached: { addon?: VerbsAddon; reason?: string } | undefined;

// Walks up from this module (src/native/ in tests, dist/ once bundled) to
// the package root that holds native/verbs.
export function nativeDir(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'native', 'verbs');
    // The sources mark the folder in the workspace; an installed package may hold only the build.
    if (fs.existsSync(path.join(candidate, 'binding.gyp')) || fs.existsSync(path.join(candidate, 'build'))) return candidate;
    dir = path.dirname(dir);
  }
  return undefined;
}

function load(): { addon?: VerbsAddon; reason?: string } {
  if (process.platform !== 'linux') return { reason: `libibverbs needs Linux (this is ${process.platform})` };
  if (process.env.IBAL_NATIVE === '0') return { reason: 'disabled by IBAL_NATIVE=0' };
  const dir = nativeDir();
  if (!dir) return { reason: 'native/verbs is not part of this installation' };
  const file = path.join(dir, 'build', 'Release', 'ibal_verbs.node');
  if (!fs.existsSync(file)) {
    const errFile = path.join(dir, 'build', 'ibal-build-error.txt');
    const why = fs.existsSync(errFile) ? fs.readFileSync(errFile, 'utf8').split('\n')[0]!.trim() : 'never built (pnpm build in the ibal repository; npm rebuild @ibal/hca where it is installed)';
    return { reason: `the ibal_verbs addon was not built: ${why}` };
  }
  let addon: VerbsAddon;
  try {
    addon = createRequire(import.meta.url)(file) as VerbsAddon;
  } catch (err) {
    return { reason: `the ibal_verbs addon failed to load (libibverbs/librdmacm missing, or built for another system: npm rebuild @ibal/hca): ${(err as Error).message}` };
  }
  for (const [k, v] of Object.entries(LAYOUT)) {
    if (addon.layout[k] !== v) return { reason: `the ibal_verbs addon is stale: WR layout field ${k} is ${addon.layout[k]}, expected ${v} (rebuild with pnpm build)` };
  }
  return { addon };
}

/** The addon, or undefined (see verbsUnavailableReason). Loaded on first use. */
export function tryVerbs(): VerbsAddon | undefined {
  cached ??= load();
  return cached.addon;
}

/** Why the addon is not available, or undefined when it is. */
export function verbsUnavailableReason(): string | undefined {
  cached ??= load();
  return cached.reason;
}
