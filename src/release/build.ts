/**
 * `ferry release build`: the agent package the installer downloads — one
 * tar.gz that runs on a source with nothing installed: the pinned Node
 * runtime (`.tools/node/bin/node` and its LICENSE, where `bin/ferry` looks
 * for it), Ferry's `src/` (without tests and fixtures) and `bin/`,
 * `package.json`, and only the production packages the agent loads, with
 * their dependencies, minus type declarations, source maps and docs.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, readdir, readFile, stat, writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { promisify } from "node:util";
import { FerryError } from "../lib/errors.ts";

const run = promisify(execFile);

/** The packages the agent's code imports (src/agent, wire, model, lib and the agent CLI). */
export const AGENT_DEPENDENCIES = [
  "commander",
  "zod",
  "@napi-rs/blake-hash",
  "@smithy/signature-v4",
  "@peculiar/x509",
  "reflect-metadata",
] as const;

export const PACKAGE_NAME = "ferry-agent-linux-x64.tar.gz";

export interface BuildOptions {
  /** The Ferry checkout to package. */
  root: string;
  /** Where the tar.gz and its `.sha256` go. */
  outDir: string;
  /** Bundle `.tools/node` (the source then needs nothing). Off for tests, which run the CLI with their own node. @default true */
  withRuntime?: boolean;
}

export interface BuildResult {
  file: string;
  sha256File: string;
  sha256: string;
  bytes: number;
  /** Files in the package and their bytes before compression. */
  files: number;
  unpackedBytes: number;
  version: string;
}

/** Files not needed at run time, in src/ and in node_modules. */
const SKIP_SRC = /(\.test\.ts$|(^|\/)(fixtures|codegen)\/$)/;
/** Nested node_modules are walked as packages of their own (only those in the closure). */
const SKIP_MODULE =
  /(\.d\.[cm]?ts$|\.ts$|\.map$|\.md$|\.markdown$|\.tsbuildinfo$|(^|\/)(node_modules|test|tests|__tests__|docs|example|examples|\.github)\/$)/i;

/** Files under `dir` (as paths relative to `root`), skipping those whose path inside `dir` matches `skip`. */
async function walk(root: string, dir: string, skip: RegExp, out: string[], inner = ""): Promise<void> {
  for (const entry of await readdir(join(dir, inner), { withFileTypes: true })) {
    const rel = inner ? `${inner}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (!skip.test(`${rel}/`)) await walk(root, dir, skip, out, rel);
    } else if ((entry.isFile() || entry.isSymbolicLink()) && !skip.test(rel)) {
      out.push(relative(root, join(dir, rel)));
    }
  }
}

/** Node's lookup of `name` from the package at `from`: nested node_modules first, then upwards. */
function resolvePackageDir(root: string, from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === root || dir.length <= root.length) return undefined;
    dir = dirname(dir);
    if (dir.endsWith("/node_modules")) dir = dirname(dir);
    if (dir.endsWith("/node_modules/@") || /\/node_modules\/@[^/]+$/.test(dir)) dir = dirname(dirname(dir));
  }
}

/** The package directories (relative to root) of `roots` and everything they depend on. */
export async function dependencyClosure(root: string, roots: readonly string[]): Promise<string[]> {
  const found = new Set<string>();
  const queue: { name: string; from: string; optional: boolean }[] = roots.map((name) => ({
    name,
    from: root,
    optional: false,
  }));
  while (queue.length > 0) {
    const { name, from, optional } = queue.shift()!;
    const dir = resolvePackageDir(root, from, name);
    if (!dir) {
      if (optional) continue; // another platform's binary
      throw new FerryError(
        "RELEASE_MISSING_PACKAGE",
        `package ${name} (needed by ${relative(root, from) || "ferry"}) is not installed: run \`make deps\` first`,
      );
    }
    const rel = relative(root, dir);
    if (found.has(rel)) continue;
    found.add(rel);
    const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies ?? {}))
      queue.push({ name: dep, from: dir, optional: false });
    for (const dep of Object.keys(pkg.optionalDependencies ?? {}))
      queue.push({ name: dep, from: dir, optional: true });
  }
  return [...found].sort();
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Builds the agent package; deterministic file order and owners, so equal inputs give equal hashes. */
export async function buildAgentPackage(options: BuildOptions): Promise<BuildResult> {
  const { root } = options;
  const withRuntime = options.withRuntime ?? true;
  const version = (JSON.parse(await readFile(join(root, "package.json"), "utf8")) as { version: string })
    .version;
  const files: string[] = ["package.json"];
  await walk(root, join(root, "bin"), /^$/, files);
  await walk(root, join(root, "src"), SKIP_SRC, files);
  for (const dir of await dependencyClosure(root, AGENT_DEPENDENCIES)) {
    await walk(root, join(root, dir), SKIP_MODULE, files);
  }
  const filtered = files;
  if (withRuntime) {
    for (const f of [".tools/node/bin/node", ".tools/node/LICENSE"]) {
      if (!existsSync(join(root, f))) {
        throw new FerryError(
          "RELEASE_NO_RUNTIME",
          `${f} is missing: run \`make node\` to install the pinned runtime, or build with --no-runtime`,
        );
      }
      filtered.push(f);
    }
  }
  filtered.sort();
  let unpackedBytes = 0;
  for (const f of filtered) unpackedBytes += (await stat(join(root, f))).size;

  await mkdir(options.outDir, { recursive: true });
  const file = join(options.outDir, PACKAGE_NAME);
  const work = await mkdtemp(join(tmpdir(), "ferry-release-"));
  try {
    const list = join(work, "files");
    await writeFile(list, `${filtered.join("\n")}\n`);
    await run(
      "tar",
      [
        "--create",
        "--gzip",
        `--file=${file}`,
        `--directory=${root}`,
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--mtime=@0",
        "--no-recursion",
        `--files-from=${list}`,
      ],
      { env: { ...process.env, GZIP: "-6n" }, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    throw new FerryError("RELEASE_TAR_FAILED", `tar could not write ${file}: ${String(err)}`, { cause: err });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const sha256 = await sha256OfFile(file);
  const sha256File = `${file}.sha256`;
  // sha256sum's format, so `sha256sum -c` works on the source too.
  await writeFile(sha256File, `${sha256}  ${PACKAGE_NAME}\n`);
  return {
    file,
    sha256File,
    sha256,
    bytes: (await stat(file)).size,
    files: filtered.length,
    unpackedBytes,
    version,
  };
}
