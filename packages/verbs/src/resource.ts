// Lifetime rules every verbs object shares. libibverbs leaves use-after-free
// undefined and answers EBUSY when a parent still has children (a PD with
// MRs, a CQ with QPs); here use-after-close always throws
// ResourceClosedError and closing a busy parent throws ResourceBusyError
// naming what still depends on it, so leaks and ordering bugs surface at the
// call that caused them.

import { ResourceBusyError, ResourceClosedError } from '@ibal/hca';

export abstract class Resource {
  #closed = false;
  readonly #parents: readonly Resource[];
  readonly #children = new Set<Resource>();

  /** Short name used in messages: "PD", "QP 0x12", ... */
  abstract describe(): string;

  protected constructor(parents: readonly Resource[]) {
    const unique = [...new Set(parents)];
    for (const p of unique) p.assertOpen();
    this.#parents = unique;
    for (const p of unique) p.#children.add(this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws ResourceClosedError if this object was closed. */
  assertOpen(): void {
    if (this.#closed) throw new ResourceClosedError(this.describe());
  }

  /**
   * Shared close path: idempotent, refuses while children are alive, runs
   * `release` (the provider call) and only then marks the object closed, so
   * a provider that refuses leaves the object usable.
   */
  protected closeWith(verb: string, release: () => void): void {
    if (this.#closed) return;
    if (this.#children.size > 0) {
      throw new ResourceBusyError(`cannot ${verb} ${this.describe()}: still used by ${this.childSummary()}`);
    }
    release();
    this.#closed = true;
    for (const p of this.#parents) p.#children.delete(this);
  }

  private childSummary(): string {
    const counts = new Map<string, number>();
    for (const c of this.#children) {
      const kind = c.describe().split(' ')[0]!;
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    return [...counts].map(([kind, n]) => `${n} ${kind}${n === 1 ? '' : 's'}`).join(', ');
  }
}
