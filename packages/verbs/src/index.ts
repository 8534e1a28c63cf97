// @ibal/verbs: libibverbs for TypeScript over any registered provider.

export { registerProvider, unregisterProvider, registeredProviders, PROVIDER_ENV } from './providers.js';
export { Device, getDeviceList, openDevice } from './device.js';
export { Context, type EventsOptions } from './context.js';
export type { AsyncEvent } from './events.js';
export { PD } from './pd.js';
export { MR, regMr, type MrMemory } from './mr.js';
export { MW, allocMw, incRkey, type MwBind, type MwBindInfo, type BindMwWr } from './mw.js';
export { CQ, wcOpcodeName, type CreateCqOptions, type NextOptions } from './cq.js';
export { CqEx, createCqEx, WcExFlags, WC_STANDARD_FLAGS, type CqInitAttrEx } from './cq-ex.js';
export { CompChannel, type GetCqEventOptions } from './comp-channel.js';
export { QP, createQp, type QpInitAttr, type QpCapInit } from './qp.js';
export { QpEx, createQpEx, qpToQpEx, SendOpsFlags, type QpInitAttrEx } from './qp-ex.js';
export { SRQ, createSrq, type SrqInitAttr } from './srq.js';
export { AH, createAh } from './ah.js';
export { MadAgent, registerMadAgent, type MadAgentOptions } from './mad-agent.js';
export type { SendWr, UdDest } from './wr.js';
export { gidToString, gidFromString, gidFromIp } from './gid.js';

// The soft RoCEv2 HCA, registered by default: add devices as `rdma link add` would.
export { addSoftDevice, softProvider, type SoftDevice, type SoftDeviceOptions, type FaultOptions } from '@ibal/hca';

export {
  QpType,
  QpState,
  WrOpcode,
  WcOpcode,
  WcStatus,
  wcStatusName,
  Access,
  MwType,
  SendFlags,
  WcFlags,
  QpAttrMask,
  SrqAttrMask,
  Mtu,
  mtuBytes,
  PortState,
  NodeType,
  LinkLayer,
  EventType,
  eventTypeName,
  qpStateName,
  qpTypeName,
  qpAttrMaskNames,
  IbalError,
  InvalidArgumentError,
  ResourceClosedError,
  ResourceBusyError,
  NotFoundError,
  NotSupportedError,
  CapacityError,
  QpStateError,
  PostError,
  NoDeviceError,
  WorkCompletionError,
} from '@ibal/hca';
export type {
  HcaProvider,
  Sge,
  RecvWr,
  WorkCompletion,
  QpAttr,
  QpCap,
  AhAttr,
  SrqAttr,
  DeviceAttr,
  DeviceAttrEx,
  PortAttr,
  Gid,
  MadAddress,
  MadAgentCounters,
} from '@ibal/hca';
