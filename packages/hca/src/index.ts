export * from './enums.js';
export * from './errors.js';
export type * from './provider.js';
export { newWorkCompletion } from './provider.js';
export { softProvider, addSoftDevice, SoftDevice, type SoftDeviceOptions } from './soft/device.js';
export type { FaultOptions, FaultCounters } from './soft/faults.js';
export { gsiCounters, GSI_QPN, GSI_QKEY, MAD_SIZE, type GsiCounters } from './soft/gsi.js';
export { DeviceCounters } from './soft/counters.js';
export { gidFromIp, ipFromGid } from './soft/gid.js';
export { ackTimeoutMs } from './soft/requester.js';
export { validateModifyQp, validateAhAttr, qpAttrMaskNames } from './qp-state.js';
export { Opcode, opcodeName, isValidOpcode, opcodeInfo, type OpcodeInfo } from './packet/opcode.js';
export {
  DecodeResult,
  decodeResultName,
  decodePacket,
  encodeHeaders,
  finishPacket,
  newParsedPacket,
  describePacket,
  type ParsedPacket,
} from './packet/packet.js';
export { IcrcCalculator, checkIcrc, writeIcrc, computeIcrcFromFrame, type IcrcEndpoint } from './packet/icrc.js';
export { AethType, NakCode, RNR_TIMER_US, rnrTimerUs, rnrTimerForUs } from './packet/aeth.js';
export { PcapWriter } from './pcap.js';
export { readCapture, extractRoce, LinkType, type CaptureRecord, type RoceInCapture } from './pcap-reader.js';
export { sysStatus, type SysStatus, type SysFeature } from './sys/status.js';
export { SysUnavailableError, SysCallError, VmPermissionError, VmNoProcessError, VmFaultError } from './sys/errors.js';
export { ShmSegment, sweepStaleSegments, type ShmCreateOptions } from './sys/shm.js';
export { ShmRing } from './sys/ring.js';
export { Doorbell, type DoorbellOptions, type WaitOutcome } from './sys/doorbell.js';
export { vmWrite, vmRead, addressOf } from './sys/vm.js';
export { copyRuns, copyStrided, hasCopyRuns } from './sys/runs.js';
export { vmProbe, vmCanRead, type VmProbe } from './sys/vm-probe.js';
export { BatchUdpSocket, DatagramBatch, type BatchUdpSocketOptions, type BatchCounters } from './sys/mmsg.js';
export { RawRoceSocket, RawWireUnavailableError, rawSocketsAvailable, writeIpv4UdpHeaders, type RawRoceSocketOptions } from './sys/raw.js';
export { softWireChoice, type SoftWireChoice, type WireCounters } from './soft/wire.js';
export { sameHostKey, hostIdentity, type HostIdentity } from './sys/host.js';
export { nativeProvider, nativeAllocBuffer } from './native/provider.js';
export { nativeStatus, type NativeStatus, type NativeFeature } from './native/status.js';
export { NativeCallError, NativeUnavailableError } from './native/errno.js';
export { RdmaEventChannel, RdmaCmEventType, type RdmaCmEvent, type RdmaConnParam, type RdmaIdInfo } from './native/rdmacm.js';
