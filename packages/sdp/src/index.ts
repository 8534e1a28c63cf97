// @ibal/sdp: the Sockets Direct Protocol (IBTA Annex A4) with Node's net API.

export { SdpSocket, connect, createConnection, type SdpSocketOptions, type SdpConnectOptions } from './socket.js';
export { SdpServer, createServer, type SdpServerOptions, type SdpListenOptions, type SdpDropInfo } from './server.js';
export { type SdpOptions } from './options.js';
export { type SdpOnread } from './onread.js';
export { SdpSocketError, SdpProtocolError } from './errors.js';
export { SdpConnection, type ConnectionSink, type ConnectionResources, type ConnectionOptions, DEFAULT_CONNECTION_OPTIONS } from './connection.js';
export { BSDH_SIZE, Mid, BsdhFlags, midName, readBsdh, writeBsdh, type Bsdh, type MidName } from './protocol/bsdh.js';
export { HELLO_SIZE, HELLO_ACK_SIZE, HelloCap, encodeHello, decodeHello, encodeHelloAck, decodeHelloAck, type Hello, type HelloAck } from './protocol/hello.js';
export { SRC_AVAIL_HEADER_SIZE, RDMA_RD_COMPL_SIZE, readSrcAvail, writeSrcAvail, readRdmaRdCompl, writeRdmaRdCompl, type SrcAvail } from './protocol/messages.js';
export { parseRules, matchRule, type SdpRule } from './rules.js';
