/** `make bench`: every benchmark in turn, each printing its figures. */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const here = import.meta.dirname;
const only = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && !["run.ts", "support.ts"].includes(f))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)));
let failed = 0;
for (const f of benches) {
  process.stdout.write(`\n== ${f} ==\n`);
  const r = spawnSync(process.execPath, ["--disable-warning=ExperimentalWarning", join(here, f)], {
    stdio: "inherit",
  });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
