export type { ChangeTracker, DirtyExtent, TrackerGap, TrackerGapCode, TrackerStats } from "./types.ts";
export { DEFAULT_BLOCK_SIZE } from "./types.ts";
export { DirtyBitmap } from "./bitmap.ts";
export { EbpfTracker, type EbpfTrackerOptions } from "./ebpf-tracker.ts";
export { ScanTracker, scanForChanges, type ScanReport, type ScanTrackerOptions } from "./scan-tracker.ts";
export {
  checkEbpf,
  selectTracker,
  type EbpfAvailability,
  type SelectTrackerOptions,
  type TrackerPreference,
} from "./select.ts";
