import { afterAll, beforeAll } from 'vitest';

/**
 * Runs the calling file's tests with IBAL_SOFT_SHM=1 (every packet between
 * same-host devices through shared memory, the negotiation held for), and
 * puts the variable back afterwards.
 */
export function useShmMode(): void {
  let saved: string | undefined;
  beforeAll(() => {
    saved = process.env.IBAL_SOFT_SHM;
    process.env.IBAL_SOFT_SHM = '1';
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.IBAL_SOFT_SHM;
    else process.env.IBAL_SOFT_SHM = saved;
  });
}
