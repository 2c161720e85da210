import { FerryError } from "../lib/errors.ts";

/** Codes of malformed-input errors; stable, for tests and for ERROR frames. */
export type WireErrorCode =
  | "WIRE_FRAME_TOO_LARGE"
  | "WIRE_FRAME_TOO_SHORT"
  | "WIRE_BAD_CRC"
  | "WIRE_UNKNOWN_TYPE"
  | "WIRE_BAD_FIELD"
  | "WIRE_TRAILING_BYTES"
  | "WIRE_BAD_ZSTD";

/** Malformed input on the data plane: the peer is buggy or the bytes were damaged. */
export class WireError extends FerryError {
  constructor(code: WireErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { kind: "user", details });
    this.name = "WireError";
  }
}
