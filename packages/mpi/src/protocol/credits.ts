// Credit flow control for eager messages over verbs, as Open MPI's openib
// BTL does it: a sender may only SEND while the peer has a receive buffer
// posted for it. Each side starts with the peer's whole window, spends one
// credit per message, and learns of reposted buffers from the credits
// field every message carries back (or a CREDIT message when the return
// traffic is idle and half the window is owed). One credit is kept back for
// that CREDIT message, so two senders that have exhausted each other's
// windows can always tell each other about freed buffers.

export class Credits {
  /** Receive buffers the peer has posted that this side may still fill. */
  available: number;
  /** Buffers this side reposted and has not yet told the peer about. */
  owed = 0;
  readonly window: number;

  constructor(window: number) {
    this.window = window;
    this.available = window;
  }

  /** A data message may go now (one credit stays back for CREDIT messages). */
  canSend(): boolean {
    return this.available > 1;
  }

  /** A CREDIT-only message may go now. */
  canSendCredit(): boolean {
    return this.available > 0;
  }

  /** Spends a credit; returns the credits to piggyback on the message. */
  spend(): number {
    this.available--;
    const back = this.owed;
    this.owed = 0;
    return back;
  }

  /** The peer returned `n` credits. */
  granted(n: number): void {
    this.available += n;
  }

  /** This side reposted a receive buffer. */
  reposted(): void {
    this.owed++;
  }

  /** Owed credits are worth a message of their own. */
  shouldReturn(): boolean {
    return this.owed >= this.window >> 1;
  }
}
