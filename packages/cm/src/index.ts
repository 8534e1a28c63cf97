// @ibal/cm: the IB communication manager and the librdmacm API over ibal
// devices. Event style (createEventChannel, createId, resolveAddr, connect,
// accept...) mirrors librdmacm call for call; connect() and listen() give the
// promise style.

export { createEventChannel, EventChannel, CmEventType, cmEventName, type CmEvent, type ConnParam, type UdParam, type GetEventOptions } from './event-channel.js';
export { CmId, createId, RDMA_UDP_QKEY, type CmOptions, type CreateIdOptions, type ConnectParam, type CreateQpInit } from './id.js';
export { connect, Connection, type ConnectOptions } from './connection.js';
export { listen, Listener, ConnectRequest, type ListenOptions, type AcceptOptions } from './listener.js';
export { PortSpace, portSpaceName, serviceId, parseServiceId } from './service-id.js';
export { parseAddress, formatAddress, ROCE_UDP_PORT, type CmAddress, type CmAddressInput } from './address.js';
export { CmState, RdmaCmState, cmStateName, rdmaCmStateName } from './connection-state.js';
export { cmCounters, cmResources, type CmCounters } from './cm-device.js';
export { nativeCmResources } from './native-id.js';
export { RejReason, rejReasonName, MsgRejected, REJ_PRIVATE_DATA_SIZE } from './messages/rej.js';
export { SidrStatus, sidrStatusName, SIDR_REQ_PRIVATE_DATA_SIZE, SIDR_REP_PRIVATE_DATA_SIZE } from './messages/sidr.js';
export { REQ_PRIVATE_DATA_SIZE } from './messages/req.js';
export { REP_PRIVATE_DATA_SIZE } from './messages/rep.js';
export { RTU_PRIVATE_DATA_SIZE } from './messages/rtu.js';
export { DREQ_PRIVATE_DATA_SIZE } from './messages/dreq.js';
export { DREP_PRIVATE_DATA_SIZE } from './messages/drep.js';
export { MRA_PRIVATE_DATA_SIZE } from './messages/mra.js';
export { CMA_HEADER_SIZE, readCmaHeader, writeCmaHeader, type CmaHeader } from './cma-header.js';
export { CmAttr, cmAttrName, MAD_SIZE, MGMT_CLASS_CM, CM_CLASS_VERSION, readMadHeader, type MadHeader } from './mad.js';
export { encodeReq, decodeReq, newReq, CmTransport, type ReqMsg } from './messages/req.js';
export { encodeRep, decodeRep, type RepMsg } from './messages/rep.js';
export { encodeRej, decodeRej, type RejMsg } from './messages/rej.js';
export { encodeRtu, decodeRtu, type RtuMsg } from './messages/rtu.js';
export { encodeMra, decodeMra, type MraMsg } from './messages/mra.js';
export { encodeDreq, decodeDreq, type DreqMsg } from './messages/dreq.js';
export { encodeDrep, decodeDrep, type DrepMsg } from './messages/drep.js';
export { encodeSidrReq, decodeSidrReq, encodeSidrRep, decodeSidrRep, type SidrReqMsg, type SidrRepMsg } from './messages/sidr.js';
export type { CmPath } from './messages/path.js';
export { ibaTimeMs } from './timers.js';
export {
  ConnectionRejectedError,
  CmTimeoutError,
  SidrError,
  AddressError,
  AddressInUseError,
  CmStateError,
  ConnectionError,
} from './errors.js';
