/** What a data stream counts: bytes by kind, and where its time went. */

export interface StreamCounters {
  zeroBytes: number;
  /** Raw bytes sent as DATA. */
  dataBytes: number;
  compressedRawBytes: number;
  compressedBytes: number;
  /** Bytes on the wire (frames, before TLS). */
  wireBytes: number;
}

export interface SyncStalls {
  readWaitMs: number;
  windowWaitMs: number;
  socketWaitMs: number;
  throttleWaitMs: number;
  /** Waiting for the worker threads' results. */
  workerWaitMs: number;
  /** Time in zstd and in BLAKE3 (on the workers when there are any). */
  compressMs: number;
  hashMs: number;
}

export function emptyCounters(): StreamCounters {
  return { zeroBytes: 0, dataBytes: 0, compressedRawBytes: 0, compressedBytes: 0, wireBytes: 0 };
}

export function emptyStalls(): SyncStalls {
  return {
    readWaitMs: 0,
    windowWaitMs: 0,
    socketWaitMs: 0,
    throttleWaitMs: 0,
    workerWaitMs: 0,
    compressMs: 0,
    hashMs: 0,
  };
}
