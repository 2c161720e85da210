/** The workload's verifier catches what the fault matrix relies on it to catch. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, open } from "node:fs/promises";
import { join } from "node:path";
import { createScratch, type Scratch } from "./loop.ts";
import { BLOCK, checkBlocks, compareDisks, makeBlock, mutateWorkload, writeWorkload } from "./workload.ts";

const SIZE = 4 * 1024 * 1024;

async function patch(path: string, offset: number, bytes: Buffer): Promise<void> {
  const fh = await open(path, "r+");
  try {
    await fh.write(bytes, 0, bytes.length, offset);
  } finally {
    await fh.close();
  }
}

describe("self-verifying workload", () => {
  let scratch: Scratch;
  let source: string;
  before(async () => {
    scratch = await createScratch();
    source = join(scratch.dir, "source.img");
    await writeWorkload(source, { diskId: "d0", size: SIZE });
  });
  after(() => scratch.cleanup());

  const copy = async (name: string) => {
    const p = join(scratch.dir, name);
    await copyFile(source, p);
    return p;
  };

  test("a copy is identical and every written block checks out", async () => {
    const c = await compareDisks(source, await copy("same.img"), SIZE, "d0");
    assert.equal(c.identical, true);
    assert.ok(c.replica.valid > 0 && c.replica.empty > 0, "written and zero blocks both occur");
    assert.equal(c.replica.valid + c.replica.empty, SIZE / BLOCK);
  });

  test("one flipped byte: the block differs and fails its own check", async () => {
    const p = await copy("flip.img");
    // Find a written block and damage it.
    const fh = await open(p, "r+");
    const b = Buffer.alloc(BLOCK);
    let at = 0;
    for (; at < SIZE; at += BLOCK) {
      await fh.read(b, 0, BLOCK, at);
      if (b.some((x) => x !== 0)) break;
    }
    b[1000]! ^= 1;
    await fh.write(b, 0, BLOCK, at);
    await fh.close();
    const c = await compareDisks(source, p, SIZE, "d0");
    assert.equal(c.identical, false);
    assert.deepEqual(c.firstDifferent, [at]);
    assert.deepEqual(c.replica.bad, [at]);
  });

  test("a torn block (half of each of two writes) and a misplaced block fail their check", async () => {
    const p = await copy("torn.img");
    const old = makeBlock("d0", 8192, 1, 1, false);
    const neu = makeBlock("d0", 8192, 2, 2, false);
    await patch(p, 8192, Buffer.concat([neu.subarray(0, 2048), old.subarray(2048)]));
    await patch(p, 16384, makeBlock("d0", 20480, 1, 1, true));
    await patch(p, 24576, makeBlock("other", 24576, 1, 1, true));
    const check = await checkBlocks(p, "d0", SIZE);
    assert.deepEqual(check.bad, [8192, 16384, 24576]);
  });

  test("the writer changes exactly the blocks it reports, with a new generation", async () => {
    const p = await copy("mutate.img");
    const changed = await mutateWorkload(p, { diskId: "d0", size: SIZE, generation: 5, count: 7 });
    assert.equal(changed.length, 7);
    const c = await compareDisks(source, p, SIZE, "d0");
    assert.equal(c.differentBlocks, 7);
    assert.deepEqual(c.firstDifferent, changed);
    assert.equal(c.replica.badCount, 0);
    assert.equal(c.replica.maxGeneration, 5);
  });
});
