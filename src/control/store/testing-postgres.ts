/**
 * Test support: a throwaway PostgreSQL server from the Debian `postgresql`
 * package — initdb + pg_ctl in a temp dir, on a free loopback port, as the
 * `nobody` user when running as root (PostgreSQL refuses root). Always torn
 * down by `stop()`, which the tests call in `finally`/`after`.
 */
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPostgres {
  url: string;
  stop(): Promise<void>;
}

/** The newest installed PostgreSQL's bin directory, or undefined when the package is missing. */
export function findPostgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBin();
  if (!bin)
    throw new Error("PostgreSQL is not installed (Debian package postgresql; run scripts/install-debs.sh)");
  const dir = mkdtempSync(join(tmpdir(), "ferry-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) =>
    asRoot
      ? execFileSync("runuser", ["-u", "nobody", "--", join(bin, cmd), ...args], {
          stdio: "pipe",
          timeout: 60_000,
        })
      : execFileSync(join(bin, cmd), args, { stdio: "pipe", timeout: 60_000 });
  if (asRoot) chownSync(dir, 65534, 65534);
  let started = false;
  try {
    run("initdb", ["-D", data, "-U", "ferry", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    const port = await freePort();
    run("pg_ctl", [
      "-D",
      data,
      "-l",
      join(dir, "log"),
      "-w",
      "-t",
      "30",
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
      "start",
    ]);
    started = true;
    return {
      url: `postgres://ferry@127.0.0.1:${port}/postgres`,
      async stop() {
        try {
          run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    if (started) {
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {
        // already down
      }
    }
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A fresh empty database on `pg` for one test, so tests do not see each other's rows. */
export async function createDatabase(pgUrl: string, name: string): Promise<string> {
  const { default: pg } = await import("pg");
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return pgUrl.replace(/\/[^/]*$/, `/${name}`);
}
