// Lazy loader of the ibal_sys addon (native/sys). The addon is optional: it
// is built by scripts/build-native.mjs when a compiler is present, and when
// it is missing every caller gets the reason instead of a crash.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SysUnavailableError } from './errors.js';

/** The addon's raw interface; the classes in this folder wrap it. */
export interface SysAddon {
  shmMap(name: string, size: number, create: boolean): ArrayBuffer;
  shmUnlink(name: string): boolean;
  memfdMap(size: number): { buffer: ArrayBuffer; fd: number };
  fileMap(path: string): ArrayBuffer;
  detach(buffer: ArrayBuffer): boolean;
  /** Absent from addons built before it (a region's descriptor then waits for a GC). */
  releaseFd?(buffer: ArrayBuffer): boolean;
  addressOf(buffer: ArrayBuffer | ArrayBufferView): bigint;
  pageSize: number;
  futexWake(buffer: ArrayBuffer | ArrayBufferView, byteOffset: number, count: number): number;
  futexWaitSync(buffer: ArrayBuffer | ArrayBufferView, byteOffset: number, expected: number, spinNs: number, timeoutMs: number, waitersOffset?: number, yieldNs?: number): number;
  WakePipe: new (onWake: () => void) => NativeWakePipe;
  wakeOpen(pid: number, fd: number): number;
  wakeKick(fd: number): boolean;
  fdClose(fd: number): void;
  /** Absent from addons built before it (loop-turns.ts falls back to setImmediate). */
  LoopSpin?: new (onTurn: () => void) => NativeLoopSpin;
  FutexWaiter: new (buffer: ArrayBuffer | ArrayBufferView, byteOffset: number, onResult: (code: number) => void, waitersOffset?: number) => NativeFutexWaiter;
  vmTransfer(write: boolean, pid: number, buffer: ArrayBuffer | ArrayBufferView, offset: number, length: number, remote: bigint): number;
  /** Absent from addons built before it (copyRuns then says so and the caller copies itself). */
  copyStrided?(toPacked: boolean, user: ArrayBufferView, userOff: number, packed: ArrayBufferView, packedOff: number, stride: number, len: number, count: number): void;
  copyRuns?(toPacked: boolean, user: ArrayBufferView, userOff: number, packed: ArrayBufferView, packedOff: number, disp: Float64Array, len: Float64Array, extent: number, first: number, n: number): void;
  BatchSocket: new (options: NativeBatchSocketOptions) => NativeBatchSocket;
}

export interface NativeWakePipe {
  writeFd(): number;
  start(): void;
  stop(): void;
  /** Absent from addons built before it. */
  setRef?(on: boolean): void;
  close(): void;
}

export interface NativeLoopSpin {
  start(): void;
  stop(): void;
  close(): void;
}

export interface NativeFutexWaiter {
  arm(expected: number, timeoutMs: number, keepAlive?: boolean): void;
  cancel(): void;
  close(): void;
}

export interface NativeBatchSocketOptions {
  kind: 'udp' | 'raw-send' | 'raw-recv';
  family: 4 | 6;
  address?: string;
  port?: number;
  batch?: number;
  slotSize?: number;
  rcvbuf?: number;
  sndbuf?: number;
  noCheck6Rx?: boolean;
  noCheck6Tx?: boolean;
  filterPort?: number;
  dropAll?: boolean;
  onRead?: (count: number) => void;
  onWritable?: () => void;
}

export interface NativeBatchSocket {
  localPort(): number;
  recvBuffer(): ArrayBuffer;
  recvMeta(): ArrayBuffer;
  setPeer(index: number, address: string, port: number): void;
  sendBatch(arena: ArrayBuffer | ArrayBufferView, desc: Uint32Array, first: number, count: number): number;
  sendOne(buffer: ArrayBuffer | ArrayBufferView, offset: number, length: number, peer: number): boolean;
  start(): void;
  stop(): void;
  wantWritable(): void;
  setRef(ref: boolean): void;
  errors(): { count: number; lastErrno: number };
  close(): void;
}

let cached: { addon?: SysAddon; reason?: string } | undefined;

// Walks up from this module (src/sys/ in tests, dist/ once bundled) to the
// package root that holds native/sys.
function nativeDir(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'native', 'sys');
    // The sources mark the folder in the workspace; an installed package may hold only the build.
    if (fs.existsSync(path.join(candidate, 'binding.gyp')) || fs.existsSync(path.join(candidate, 'build'))) return candidate;
    dir = path.dirname(dir);
  }
  return undefined;
}

function load(): { addon?: SysAddon; reason?: string } {
  if (process.platform !== 'linux') return { reason: `the system primitives need Linux (this is ${process.platform})` };
  if (process.env.IBAL_SYS === '0') return { reason: 'disabled by IBAL_SYS=0' };
  const dir = nativeDir();
  if (!dir) return { reason: 'native/sys is not part of this installation' };
  const file = path.join(dir, 'build', 'Release', 'ibal_sys.node');
  if (!fs.existsSync(file)) {
    const errFile = path.join(dir, 'build', 'ibal-build-error.txt');
    const why = fs.existsSync(errFile) ? fs.readFileSync(errFile, 'utf8').split('\n')[0]!.trim() : 'never built (pnpm build in the ibal repository; npm rebuild @ibal/hca where it is installed)';
    return { reason: `the ibal_sys addon was not built: ${why}` };
  }
  try {
    return { addon: createRequire(import.meta.url)(file) as SysAddon };
  } catch (err) {
    return { reason: `the ibal_sys addon failed to load (built for another system? npm rebuild @ibal/hca builds it here): ${(err as Error).message}` };
  }
}

/** The addon, or undefined (see sysUnavailableReason). Loaded on first use. */
export function trySys(): SysAddon | undefined {
  cached ??= load();
  return cached.addon;
}

/** Why the addon is not available, or undefined when it is. */
export function sysUnavailableReason(): string | undefined {
  cached ??= load();
  return cached.reason;
}

/** The addon; throws SysUnavailableError with the reason when it is missing. */
export function sys(): SysAddon {
  const a = trySys();
  if (!a) throw new SysUnavailableError(cached!.reason!);
  return a;
}
