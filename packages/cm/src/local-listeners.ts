// Listeners of this host's other processes: which soft device (its UDP
// port) answers for an address and rdma_cm port. On RDMA hardware one HCA
// serves every process of a host and the kernel's CM hands a REQ to
// whichever process listens. A soft device belongs to one process, and only
// the first on an address gets RoCEv2's UDP port 4791: a connect that named
// no UDP port went to that one, which had no such listener (REJ, or no
// answer at all from a process without a CM), so a server that started after
// its clients, or restarted while they ran, could not be reached by address
// and port alone. Each soft listener leaves a small file naming its UDP port
// and pid; a connect without a UDP port looks for one first.
//
// The files live in /dev/shm, one directory per network and PID namespace
// (the same address means the same thing; the pid can be checked), written
// by anyone (sticky, as /tmp), and hold "<udpPort> <pid> <start time>". A
// file whose process is gone (or whose pid now names a process started
// later) is ignored, and removed by the next listen of any process; a
// process removes its own as it exits. Where /dev/shm cannot be used,
// nothing is recorded and connects go to 4791 as before.
import fs from 'node:fs';
import path from 'node:path';
import { hostIdentity } from '@ibal/hca';

function directory(): string | undefined {
  const id = hostIdentity();
  return id ? path.join('/dev/shm', `ibal-cm-${id.netns}-${id.pidns}`) : undefined;
}

function fileFor(dir: string, portSpace: number, port: number, address: string): string {
  return path.join(dir, `${portSpace}-${port}-${address}`);
}

/** When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or undefined if it is gone. */
function startTime(pid: number | 'self'): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let ownStart: string | undefined;
/** Files this process wrote and has not withdrawn: removed at exit if still ours. */
const published = new Map<string, string>();
let exitHook = false;

function record(udpPort: number): string {
  ownStart ??= startTime('self') ?? '0';
  return `${udpPort} ${process.pid} ${ownStart}`;
}

/** Records that this process's device on `address` with `udpPort` listens on `port` of `portSpace`. */
export function publishListener(portSpace: number, port: number, address: string, udpPort: number): void {
  const dir = directory();
  if (!dir) return;
  const file = fileFor(dir, portSpace, port, address);
  const tmp = `${file}.${process.pid}`;
  const text = record(udpPort);
  // Twice: another process may remove the directory, empty, between our mkdir and write.
  for (let i = 0; i < 2; i++) {
    try {
      if (!fs.existsSync(dir)) {
        fs.mkdirSync(dir, { recursive: true });
        fs.chmodSync(dir, 0o1777);
      }
      if (i === 0) sweep(dir);
      fs.writeFileSync(tmp, text, { mode: 0o644 });
      fs.renameSync(tmp, file);
      published.set(file, text);
      if (!exitHook) {
        exitHook = true;
        process.once('exit', () => {
          for (const [f, text] of published) removeIfStill(f, text);
        });
      }
      return;
    } catch {
      // No /dev/shm here, or not ours to write: connects name the UDP port.
    }
  }
}

/** Removes the record of a listener this process published (not one another process wrote since). */
export function withdrawListener(portSpace: number, port: number, address: string, udpPort: number): void {
  const dir = directory();
  if (!dir) return;
  const file = fileFor(dir, portSpace, port, address);
  published.delete(file);
  removeIfStill(file, record(udpPort));
  try {
    // The last one out takes the directory (not if another listener is there).
    fs.rmdirSync(dir);
  } catch {
    // not empty, or gone
  }
}

function removeIfStill(file: string, text: string): void {
  try {
    if (fs.readFileSync(file, 'utf8') === text) fs.rmSync(file, { force: true });
  } catch {
    // gone already
  }
}

/** The record in `text` names a process that is still the one that wrote it. */
function live(text: string): RegExpExecArray | undefined {
  const m = /^(\d+) (\d+) (\d+)$/.exec(text);
  return m && startTime(Number(m[2])) === m[3] ? m : undefined;
}

/** Removes the records of processes that are gone (killed, so they could not remove their own). */
function sweep(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      const text = fs.readFileSync(file, 'utf8');
      if (!live(text)) removeIfStill(file, text);
    } catch {
      // removed meanwhile, or a half-written record's temporary file
    }
  }
}

/** The UDP port of a live listener on `address`:`port` of `portSpace` on this host, if one was published. */
export function findListener(portSpace: number, port: number, address: string): number | undefined {
  const dir = directory();
  if (!dir) return undefined;
  const file = fileFor(dir, portSpace, port, address);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const m = live(text);
  if (!m) {
    removeIfStill(file, text);
    return undefined;
  }
  const udpPort = Number(m[1]);
  return udpPort > 0 && udpPort < 65536 ? udpPort : undefined;
}
