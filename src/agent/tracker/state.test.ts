import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DirtyBitmap } from "./bitmap.ts";
import {
  BITMAP_FILE,
  type CleanStopMarker,
  TrackerStateStore,
  checkPreviousRun,
  decodeBitmapFile,
  encodeBitmapFile,
} from "./state.ts";

const identity = { devicePath: "/dev/loop9", device: "7:9", deviceSize: 10 * 65536 + 512, blockSize: 65536 };
const marker: CleanStopMarker = { version: 1, kind: "ebpf", ...identity, stoppedAt: "t", bootId: "boot-a" };

test("the bitmap file round-trips and refuses damage, other sizes and other block sizes", () => {
  const bitmap = new DirtyBitmap(identity.deviceSize, identity.blockSize);
  bitmap.markRange(65536 * 3, 70000);
  bitmap.markRange(identity.deviceSize - 1, 1);
  const file = encodeBitmapFile(bitmap);
  assert.deepEqual(
    decodeBitmapFile(file, identity.deviceSize, identity.blockSize)?.extents(),
    bitmap.extents(),
  );
  assert.equal(decodeBitmapFile(file, identity.deviceSize + 512, identity.blockSize), undefined);
  assert.equal(decodeBitmapFile(file, identity.deviceSize, 4096), undefined);
  for (let i = 0; i < file.length; i++) {
    const damaged = Buffer.from(file);
    damaged[i]! ^= 0x10;
    assert.equal(
      decodeBitmapFile(damaged, identity.deviceSize, identity.blockSize),
      undefined,
      `flip at ${i}`,
    );
  }
  assert.equal(
    decodeBitmapFile(file.subarray(0, file.length - 1), identity.deviceSize, identity.blockSize),
    undefined,
  );
});

test("a start trusts the previous run only after a clean stop of the same device in the same boot", () => {
  assert.equal(checkPreviousRun(marker, identity, true, "boot-a"), undefined);
  assert.equal(checkPreviousRun(undefined, identity, false, "boot-a")?.code, "first-start");
  assert.equal(checkPreviousRun(undefined, identity, true, "boot-a")?.code, "unclean-stop");
  assert.equal(checkPreviousRun(marker, identity, false, "boot-a")?.code, "unclean-stop");
  assert.equal(checkPreviousRun(marker, identity, true, "boot-b")?.code, "rebooted");
  const grown = checkPreviousRun(
    marker,
    { ...identity, deviceSize: identity.deviceSize * 2 },
    true,
    "boot-a",
  );
  assert.equal(grown?.code, "state-mismatch");
  assert.match(grown!.reason, /deviceSize/);
  assert.equal(
    checkPreviousRun(marker, { ...identity, device: "7:10" }, true, "boot-a")?.code,
    "state-mismatch",
  );
  const open = { code: "lost-events" as const, reason: "lost 3", since: "2026-01-01T00:00:00.000Z" };
  assert.deepEqual(checkPreviousRun({ ...marker, gap: open }, identity, true, "boot-a"), open);
});

test("the store writes and reads back the marker and the bitmap; clearing removes the marker", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ferry-tracker-state-"));
  try {
    const store = new TrackerStateStore(join(dir, "disk0"));
    await store.ensureDir();
    assert.equal(await store.readMarker(), undefined);
    const bitmap = new DirtyBitmap(identity.deviceSize, identity.blockSize);
    bitmap.markRange(0, 1);
    await store.writeBitmap(bitmap);
    await store.writeMarker(marker);
    assert.deepEqual(await store.readMarker(), marker);
    assert.deepEqual(
      (await store.readBitmap(identity.deviceSize, identity.blockSize))?.extents(),
      bitmap.extents(),
    );
    await store.clearMarker();
    assert.equal(await store.readMarker(), undefined);
    // A damaged bitmap reads as missing.
    const path = join(dir, "disk0", BITMAP_FILE);
    const raw = await readFile(path);
    raw[raw.length - 1]! ^= 1;
    await writeFile(path, raw);
    assert.equal(await store.readBitmap(identity.deviceSize, identity.blockSize), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
