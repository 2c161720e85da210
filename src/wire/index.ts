export * from "./messages.ts";
export { WireError, type WireErrorCode } from "./errors.ts";
export { encodeFrame, encodeFrameToBuffer } from "./serializer.ts";
export { FrameDecoder, parseFrame, type DecoderOptions } from "./parser.ts";
export {
  ZERO_BLOCK_HASH,
  blake3Of,
  blockHashes,
  dataRuns,
  isZero,
  isZeroRange,
  recordedHash,
} from "./hashes.ts";
export { FramedConnection, type ConnectionHandlers, type HeartbeatOptions } from "./connection.ts";
export { blockCount, decodeHashList, encodeHashList, type HashList } from "./hash-list.ts";
export {
  createZstdCompressor,
  createZstdDecompressor,
  zstdCompressBound,
  type ZstdCompressor,
  type ZstdDecompressor,
} from "./zstd.ts";
