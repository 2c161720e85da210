import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { createLogger, type LogLevel } from "./log.ts";

/** The levels a logger writes, with FERRY_LOG_LEVEL set to `env` (or unset). */
function written(level: LogLevel | undefined, env: string | undefined): string[] {
  const saved = process.env.FERRY_LOG_LEVEL;
  if (env === undefined) delete process.env.FERRY_LOG_LEVEL;
  else process.env.FERRY_LOG_LEVEL = env;
  try {
    const stream = new PassThrough();
    const lines: string[] = [];
    stream.on("data", (d: Buffer) => lines.push(...d.toString().split("\n").filter(Boolean)));
    const log = createLogger({ stream, ...(level ? { level } : {}), fields: { component: "t" } });
    log.debug("d");
    log.info("i", { n: 1n });
    log.child({ sub: 1 }).warn("w");
    log.error("e");
    return lines.map((l) => {
      const v = JSON.parse(l) as { level: string; component: string; time: string };
      assert.equal(v.component, "t");
      assert.ok(!Number.isNaN(Date.parse(v.time)));
      return v.level;
    });
  } finally {
    if (saved === undefined) delete process.env.FERRY_LOG_LEVEL;
    else process.env.FERRY_LOG_LEVEL = saved;
  }
}

test("a logger writes its level and above; FERRY_LOG_LEVEL overrides the command's level, children included", () => {
  assert.deepEqual(written(undefined, undefined), ["info", "warn", "error"]);
  assert.deepEqual(written("warn", undefined), ["warn", "error"]);
  assert.deepEqual(written("warn", "debug"), ["debug", "info", "warn", "error"]);
  assert.deepEqual(written("debug", "ERROR"), ["error"]);
  // A value that names no level is ignored.
  assert.deepEqual(written("warn", "verbose"), ["warn", "error"]);
});

test("bigint fields are written as strings", () => {
  const stream = new PassThrough();
  let out = "";
  stream.on("data", (d: Buffer) => (out += d.toString()));
  createLogger({ stream, level: "info" }).info("seq", { seq: 2n ** 64n });
  assert.equal((JSON.parse(out) as { seq: string }).seq, "18446744073709551616");
});
