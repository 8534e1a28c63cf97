// A ConnectionSink that keeps what the connection hands it, for tests of the engine.
import type { ConnectionSink } from '../../src/connection.js';

export class Collector implements ConnectionSink {
  chunks: Buffer[] = [];
  ended = false;
  finishedFlag = false;
  error: Error | undefined;
  accept = true;
  onEvent: () => void = () => {};
  data(c: Buffer): boolean {
    this.chunks.push(c);
    this.onEvent();
    return this.accept;
  }
  end(): void {
    this.ended = true;
    this.onEvent();
  }
  failed(err: Error): void {
    this.error = err;
    this.onEvent();
  }
  finished(): void {
    this.finishedFlag = true;
    this.onEvent();
  }
  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }
  until(cond: () => boolean, ms = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      if (cond()) return resolve();
      const t = setTimeout(() => reject(new Error('timed out waiting')), ms);
      const prev = this.onEvent;
      this.onEvent = () => {
        prev();
        if (cond()) {
          clearTimeout(t);
          this.onEvent = prev;
          resolve();
        }
      };
    });
  }
}
