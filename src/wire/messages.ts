/**
 * The data-plane protocol between the agent (source) and the replicator
 * (TCP 1500, inside TLS). Types and constants only; see serializer.ts and
 * parser.ts. No sockets in this folder.
 *
 * Every frame:
 *
 *   u32 length   bytes that follow the crc field (type + fields + payload)
 *   u32 crc      CRC-32 of the frame's head: type byte and fields (for DATA,
 *                everything but the payload, whose integrity is covered by
 *                the per-block BLAKE3 hashes, checked after decompression)
 *   u8  type
 *   ... fields (big-endian integers; strings as u8/u16 length + UTF-8)
 *
 * The first frame on a connection is HELLO from the agent; the replicator
 * answers WELCOME (or ERROR and closes). Then the agent streams DATA, ZERO
 * and BARRIER frames, each with a sequence number; the replicator answers
 * ACK(seq) once everything up to seq is durable on its disk. For a rescan the
 * agent asks HASH_REQUEST and the replicator answers HASHES with the hashes it
 * recorded. HEARTBEAT goes both ways when a side has had nothing to say for a
 * while.
 */

export const PROTOCOL_VERSION = 1;
/** Bytes before the type byte: length + crc. */
export const FRAME_PREFIX_BYTES = 8;
/** Default cap on `length`; checked before any allocation. */
export const DEFAULT_MAX_FRAME_LENGTH = 8 * 1024 * 1024 + 64 * 1024;
/** Size of a BLAKE3 digest. */
export const HASH_BYTES = 32;
export const GENERATION_ID_BYTES = 16;

export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  DATA: 0x10,
  ZERO: 0x11,
  BARRIER: 0x12,
  HASH_REQUEST: 0x13,
  ACK: 0x20,
  HASHES: 0x21,
  ERROR: 0x30,
  HEARTBEAT: 0x40,
} as const;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

export const Compression = { NONE: 0, ZSTD: 1 } as const;
export type CompressionCode = (typeof Compression)[keyof typeof Compression];

export const HelloMode = {
  /** Start a new generation: the staging volume's previous contents are a base for a rescan, not a resume. */
  NEW: 0,
  /** Continue the generation named in the HELLO from the replicator's durable point. */
  RESUME: 1,
} as const;
export type HelloModeCode = (typeof HelloMode)[keyof typeof HelloMode];

/** BARRIER flags. */
export const BarrierFlags = {
  /** The initial sync of the whole disk is complete at this point. */
  INITIAL_SYNC_COMPLETE: 0x01,
  /** The replica is crash-consistent at this point (a snapshot may be taken). */
  CONSISTENT: 0x02,
} as const;

export interface HelloFrame {
  type: "HELLO";
  protocolVersion: number;
  mode: HelloModeCode;
  sourceServerId: string;
  diskId: string;
  diskSize: bigint;
  logicalBlockSize: number;
  /** Granularity of the per-block hashes (bytes, power of two). */
  hashBlockSize: number;
  generationId: Buffer;
  /** Credential presented to the replicator (pairing token for now). */
  token: string;
}

export interface WelcomeFrame {
  type: "WELCOME";
  protocolVersion: number;
  generationId: Buffer;
  /** Bytes from offset 0 that are durable for this generation's initial sync. */
  resumeOffset: bigint;
  /** Highest sequence number durable on the replicator (0 when none). */
  durableSeq: bigint;
  /** Largest raw DATA length the replicator accepts. */
  maxDataLength: number;
  heartbeatIntervalMs: number;
}

export interface DataFrame {
  type: "DATA";
  seq: bigint;
  offset: bigint;
  /** Raw (uncompressed) length. */
  length: number;
  compression: CompressionCode;
  /** One BLAKE3 digest per hash block of the raw data, concatenated. */
  hashes: Buffer;
  payload: Buffer;
}

export interface ZeroFrame {
  type: "ZERO";
  seq: bigint;
  offset: bigint;
  length: bigint;
}

export interface BarrierFrame {
  type: "BARRIER";
  seq: bigint;
  barrierId: bigint;
  flags: number;
  timestampMs: bigint;
}

/** Asks the replicator for the hashes it recorded (a rescan compares them with the disk). */
export interface HashRequestFrame {
  type: "HASH_REQUEST";
  requestId: number;
  firstBlock: bigint;
  count: number;
}

/** The replicator's recorded hashes for `count` blocks from `firstBlock` (durable state only). */
export interface HashesFrame {
  type: "HASHES";
  requestId: number;
  firstBlock: bigint;
  hashes: Buffer;
}

/** Most hashes one HASH_REQUEST may ask for (2 MiB of digests). */
export const MAX_HASHES_PER_REQUEST = 65536;

export interface AckFrame {
  type: "ACK";
  seq: bigint;
}

export interface ErrorFrame {
  type: "ERROR";
  code: string;
  message: string;
}

export interface HeartbeatFrame {
  type: "HEARTBEAT";
  timestampMs: bigint;
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | DataFrame
  | ZeroFrame
  | BarrierFrame
  | HashRequestFrame
  | HashesFrame
  | AckFrame
  | ErrorFrame
  | HeartbeatFrame;

/** Limits the decoder enforces before allocating or accepting a frame. */
export interface WireLimits {
  /** @default DEFAULT_MAX_FRAME_LENGTH */
  maxFrameLength: number;
}
