import { crc32 } from "node:zlib";
import { BufferWriter } from "./buffer-writer.ts";
import {
  FRAME_PREFIX_BYTES,
  FrameType,
  GENERATION_ID_BYTES,
  HASH_BYTES,
  type DataFrame,
  type Frame,
} from "./messages.ts";

/**
 * Encodes a frame as one or two buffers: the head (prefix, type, fields) and,
 * for DATA, the payload, so large payloads are never copied. Write them in
 * order (socket.cork()/uncork() or writev).
 */
export function encodeFrame(frame: Frame): Buffer[] {
  const w = new BufferWriter(frame.type === "DATA" ? 64 + frame.hashes.length : 64);
  w.u32(0).u32(0); // length and crc, patched below
  let payload: Buffer | undefined;
  switch (frame.type) {
    case "HELLO":
      if (frame.generationId.length !== GENERATION_ID_BYTES)
        throw new RangeError("generationId must be 16 bytes");
      w.u8(FrameType.HELLO)
        .u16(frame.protocolVersion)
        .u8(frame.mode)
        .string(frame.sourceServerId, 8)
        .string(frame.diskId, 8)
        .u64(frame.diskSize)
        .u32(frame.logicalBlockSize)
        .u32(frame.hashBlockSize)
        .bytes(frame.generationId)
        .string(frame.token, 16);
      break;
    case "WELCOME":
      if (frame.generationId.length !== GENERATION_ID_BYTES)
        throw new RangeError("generationId must be 16 bytes");
      w.u8(FrameType.WELCOME)
        .u16(frame.protocolVersion)
        .bytes(frame.generationId)
        .u64(frame.resumeOffset)
        .u64(frame.durableSeq)
        .u32(frame.maxDataLength)
        .u32(frame.heartbeatIntervalMs);
      break;
    case "DATA":
      writeDataHead(w, frame);
      payload = frame.payload;
      break;
    case "ZERO":
      w.u8(FrameType.ZERO).u64(frame.seq).u64(frame.offset).u64(frame.length);
      break;
    case "BARRIER":
      w.u8(FrameType.BARRIER).u64(frame.seq).u64(frame.barrierId).u8(frame.flags).u64(frame.timestampMs);
      break;
    case "HASH_REQUEST":
      w.u8(FrameType.HASH_REQUEST).u32(frame.requestId).u64(frame.firstBlock).u32(frame.count);
      break;
    case "HASHES":
      if (frame.hashes.length % HASH_BYTES !== 0) throw new RangeError("hashes must be whole BLAKE3 digests");
      w.u8(FrameType.HASHES)
        .u32(frame.requestId)
        .u64(frame.firstBlock)
        .u32(frame.hashes.length / HASH_BYTES)
        .bytes(frame.hashes);
      break;
    case "ACK":
      w.u8(FrameType.ACK).u64(frame.seq);
      break;
    case "ERROR":
      w.u8(FrameType.ERROR).string(frame.code, 8).string(frame.message, 16);
      break;
    case "HEARTBEAT":
      w.u8(FrameType.HEARTBEAT).u64(frame.timestampMs);
      break;
  }
  const head = w.finish();
  const headBody = head.subarray(FRAME_PREFIX_BYTES);
  w.patchU32(0, headBody.length + (payload?.length ?? 0));
  w.patchU32(4, crc32(headBody));
  return payload === undefined ? [head] : [head, payload];
}

function writeDataHead(w: BufferWriter, frame: DataFrame): void {
  if (frame.hashes.length % HASH_BYTES !== 0) throw new RangeError("hashes must be whole BLAKE3 digests");
  w.u8(FrameType.DATA)
    .u64(frame.seq)
    .u64(frame.offset)
    .u32(frame.length)
    .u8(frame.compression)
    .u16(frame.hashes.length / HASH_BYTES)
    .bytes(frame.hashes);
}

/** The frame as one buffer (tests, small frames). */
export function encodeFrameToBuffer(frame: Frame): Buffer {
  const parts = encodeFrame(frame);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
