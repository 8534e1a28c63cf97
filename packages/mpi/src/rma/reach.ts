// How this process reaches each rank's window, decided once when the window
// is made from the card every rank publishes: in place (a shared segment it
// maps, or its own window), by process_vm_* (a same-host rank's own array),
// by RDMA (a rank over verbs, whose window is registered once), or, with
// none of these, by message (target.ts serves those).
import { ShmSegment, addressOf } from '@ibal/hca';
import type { Comm } from '../comm.js';
import type { TypedArray } from '../ops.js';
import type { Engine } from '../p2p/engine.js';
import { HDR_WORDS, W_ADDR_HI, W_ADDR_LO, W_KEY } from '../protocol/header.js';
import type { Endpoint } from '../transport/transport.js';

/** Bytes before an Allocate'd window's memory in its segment: the accumulate lock word, and 8-byte alignment. */
const WIN_HEADER = 64;

/** Where a window's memory lives: a shared segment (its header's lock word beside it), or this process's heap. */
export interface WinMemory {
  memory: Uint8Array;
  segment: ShmSegment | undefined;
  accLock: Int32Array | undefined;
}

/** What a rank tells the others about its window. */
export interface WinCard {
  size: number;
  dispUnit: number;
  /** Its shared segment's name, for the ranks of its host. */
  segment: string | undefined;
  pid: number;
  /** Where its window is in its own address space (process_vm_*). */
  addr: bigint;
  /** Its window's registration for RDMA. */
  rdma: { lo: number; hi: number; key: number } | undefined;
}

/** How one target's window is reached; nothing set means by message. */
export interface Reach {
  /** Its bytes, mapped here. */
  direct?: Uint8Array;
  /** The accumulate lock word beside them (none for a window on a process's heap: only its own thread writes it in place). */
  lock?: Int32Array;
  /** Whole-window views of `direct`, by element type, made by the first in-place accumulate of each. */
  views?: (TypedArray | undefined)[];
  vm?: { pid: number; base: bigint };
  rdma?: { ep: Endpoint; base: number; key: number };
}

/** Allocate's memory: a shared segment when some rank of `comm` shares memory with this one (and `inPlace`), else the heap. */
export function allocWindowMemory(engine: Engine, comm: Comm, size: number, inPlace: boolean): WinMemory {
  if (inPlace && comm.group.some((w) => engine.endpoints[w]?.kind === 'shm')) {
    try {
      const segment = ShmSegment.create(WIN_HEADER + Math.max(size, 1));
      return { memory: new Uint8Array(segment.buffer, WIN_HEADER, size), segment, accLock: new Int32Array(segment.buffer, 0, 1) };
    } catch {
      // No room in /dev/shm: the heap serves, and the host's peers use process_vm_*.
    }
  }
  return { memory: new Uint8Array(size), segment: undefined, accLock: undefined };
}

/**
 * This rank's card. With `oneSided`, the window is registered once for
 * every peer reached over verbs (they share one protection domain);
 * `unexpose` ends that registration.
 */
export function windowCard(engine: Engine, comm: Comm, mem: WinMemory, dispUnit: number, oneSided: boolean): { card: WinCard; unexpose: (() => void) | undefined } {
  const { memory } = mem;
  let rdma: WinCard['rdma'];
  let unexpose: (() => void) | undefined;
  const verbs = comm.group.map((w) => engine.endpoints[w]).find((ep) => ep?.kind === 'verbs' && ep.put);
  if (oneSided && verbs && memory.length > 0) {
    const h = new Int32Array(HDR_WORDS);
    unexpose = verbs.expose(memory, h);
    rdma = { lo: h[W_ADDR_LO]!, hi: h[W_ADDR_HI]!, key: h[W_KEY]! };
  }
  const card = { size: memory.length, dispUnit, segment: mem.segment?.name, pid: process.pid, addr: memory.length > 0 ? addressOf(memory) : 0n, rdma };
  return { card, unexpose };
}

/**
 * How this rank reaches each rank's window, from their cards (all by
 * message unless `oneSided`). Peers' segments it maps are pushed on
 * `opened`, for the window to close.
 */
export function reachOf(engine: Engine, comm: Comm, cards: readonly WinCard[], mem: WinMemory, oneSided: boolean, opened: ShmSegment[]): Reach[] {
  return cards.map((card, r) => {
    if (!oneSided) return {};
    if (r === comm.rank) return { direct: mem.memory, lock: mem.accLock };
    const ep = engine.endpoints[comm.group[r]!];
    if (ep?.kind === 'shm') {
      if (card.segment) {
        try {
          const seg = ShmSegment.open(card.segment);
          opened.push(seg);
          return { direct: new Uint8Array(seg.buffer, WIN_HEADER, card.size), lock: new Int32Array(seg.buffer, 0, 1) };
        } catch {
          // Not mappable from here after all: process_vm_* below.
        }
      }
      // The shm transport reaches only peers whose memory process_vm_readv
      // reads (world.ts probes it both ways), and writev asks the same.
      return card.size > 0 ? { vm: { pid: card.pid, base: card.addr } } : {};
    }
    if (ep?.kind === 'verbs' && ep.put && card.rdma) return { rdma: { ep, base: (card.rdma.hi >>> 0) * 2 ** 32 + (card.rdma.lo >>> 0), key: card.rdma.key >>> 0 } };
    return {};
  });
}
