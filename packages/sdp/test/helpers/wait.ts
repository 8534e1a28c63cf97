// Bounded waits for events: a test that would hang fails instead.

import type { EventEmitter } from 'node:events';

export function once<T = unknown>(em: EventEmitter, event: string, ms = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    const onEvent = (v: T) => {
      cleanup();
      resolve(v);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      clearTimeout(t);
      em.off(event, onEvent);
      if (event !== 'error') em.off('error', onError);
    };
    em.on(event, onEvent);
    if (event !== 'error') em.on('error', onError);
  });
}

export function errorOf(em: EventEmitter, ms = 20_000): Promise<NodeJS.ErrnoException> {
  return once<NodeJS.ErrnoException>(em, 'error', ms);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
