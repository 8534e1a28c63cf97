/**
 * Per-device counters, in the spirit of rxe's hw_counters: every packet the
 * receive path drops is counted under the reason it was dropped, so a fuzz or
 * fault run can show that nothing was silently lost.
 */
export class DeviceCounters {
  rxPackets = 0;
  /** Too short, bad opcode, bad length or pad: the codec refused it. */
  rxMalformed = 0;
  rxBadIcrc = 0;
  rxUnknownQp = 0;
  /** The QP is in a state that does not receive (RESET, INIT, ERR). */
  rxBadState = 0;
  /** Wrong transport for the QP, e.g. an RC opcode at a UD QP, or a request from the wrong peer. */
  rxWrongTransport = 0;
  rxBadQkey = 0;
  /** UD/UC message with no receive WQE posted. */
  rxNoRecv = 0;
  rxDuplicate = 0;
  rxOutOfSequence = 0;
  /** A response or ACK that matches nothing outstanding. */
  rxStaleResponse = 0;
  txRetransmits = 0;
  txTimeouts = 0;
  txSeqNaks = 0;
  txRnrNaks = 0;
  txErrNaks = 0;
  rxRnrNaks = 0;

  /** Sum of every drop counter. */
  get rxDropped(): number {
    return (
      this.rxMalformed +
      this.rxBadIcrc +
      this.rxUnknownQp +
      this.rxBadState +
      this.rxWrongTransport +
      this.rxBadQkey +
      this.rxNoRecv +
      this.rxDuplicate +
      this.rxOutOfSequence +
      this.rxStaleResponse
    );
  }

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this)) if (typeof v === 'number') out[k] = v;
    out.rxDropped = this.rxDropped;
    return out;
  }
}
