export * from "./messages.ts";
export { WireError, type WireErrorCode } from "./errors.ts";
export { encodeFrame, encodeFrameToBuffer } from "./serializer.ts";
export { FrameDecoder, parseFrame } from "./parser.ts";
