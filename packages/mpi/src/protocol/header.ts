// The header every message between ranks starts with, in 32-bit words so a
// transport can read it in place from a ring slot or a bounce buffer
// (payloads then start 8-byte aligned). One format for every transport: the
// matching layer above does not care which one carried a message.
//
//   word 0  type | flags << 8
//   word 1  context id (communicator, plus one for its collectives)
//   word 2  sender's rank in that communicator
//   word 3  tag
//   word 4  message length in bytes
//   word 5  sender's request id (rendezvous RTS and FIN)
//   word 6  rendezvous: source address, low 32 bits
//   word 7  rendezvous: source address, high 32 bits
//   word 8  rendezvous: key (rkey for verbs)
//   word 9  credits returned (verbs flow control)
//   (RMA control messages use words 3-7 their own way: rma/protocol.ts)
//   words 10-11 reserved

export const HDR_BYTES = 48;
export const HDR_WORDS = HDR_BYTES / 4;

export const enum MsgType {
  /** Header and the whole payload. */
  EAGER = 1,
  /** Request to send: the receiver pulls the payload once the message matches. */
  RTS = 2,
  /** The receiver is done pulling; the sender's buffer is free again. */
  FIN = 3,
  /** Credits only (verbs), when no other message carries them back. */
  CREDIT = 4,
  /**
   * One-sided communication's control message (rma/protocol.ts): header
   * only, so every transport carries it whatever its eager limit; the data
   * of a Put or an Accumulate follows as an ordinary message.
   */
  RMA = 5,
}

export const enum MsgFlag {
  /** The payload is a structured-clone (v8.serialize) object, not typed-array bytes. */
  OBJECT = 1,
  /**
   * A synchronous-mode send (MPI_Ssend): the sender completes only once a
   * receive has matched. An eager message carries the sender's request id
   * (word 5) and the receiver answers the match with FIN; a rendezvous
   * message is synchronous already (its FIN follows the match).
   */
  SYNC = 2,
}

export const W_TYPE = 0;
export const W_CTX = 1;
export const W_SRC = 2;
export const W_TAG = 3;
export const W_LEN = 4;
export const W_ID = 5;
export const W_ADDR_LO = 6;
export const W_ADDR_HI = 7;
export const W_KEY = 8;
export const W_CREDITS = 9;
