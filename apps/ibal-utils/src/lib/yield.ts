// The soft HCA runs on this thread's event loop: its UDP socket delivers
// packets, and with them completions, only when the loop gets to run. A poll
// loop therefore yields one macrotask turn (I/O runs in it) between empty
// polls; a synchronous spin would wait forever.

export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
