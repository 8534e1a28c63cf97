// Newline-delimited JSON on a TCP socket: the bootstrap's only framing. The
// bootstrap carries a few kilobytes per rank, so clarity beats compactness.
import type { Socket } from 'node:net';

export type Message = { op: string; [key: string]: unknown };

/** Calls `onMessage` for each complete line; a malformed line ends the connection. */
export function readLines(socket: Socket, onMessage: (m: Message) => void): void {
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    pending += chunk;
    if (pending.length > 64 << 20) {
      socket.destroy(new Error('bootstrap line longer than 64 MiB'));
      return;
    }
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.length === 0) continue;
      let m: Message;
      try {
        m = JSON.parse(line) as Message;
      } catch {
        socket.destroy(new Error('malformed bootstrap message'));
        return;
      }
      if (typeof m !== 'object' || m === null || typeof m.op !== 'string') {
        socket.destroy(new Error('malformed bootstrap message'));
        return;
      }
      onMessage(m);
    }
  });
}

export function writeLine(socket: Socket, m: Message): void {
  if (!socket.destroyed && socket.writable) socket.write(JSON.stringify(m) + '\n');
}
