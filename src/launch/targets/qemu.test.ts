/** The qemu target's choice of accelerator: KVM only where an ordinary guest can run under it. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chooseAccelerator, readHostVirtualization, type HostVirtualization } from "./qemu.ts";
import { FerryError } from "../../lib/errors.ts";

const host = (o: Partial<HostVirtualization>): HostVirtualization => ({
  kvmDevice: true,
  cpuFlags: new Set(["fpu", "sse2"]),
  kvmModules: [],
  ...o,
});

test("auto takes KVM with VT-x or AMD-V and a usable /dev/kvm", () => {
  const intel = chooseAccelerator("auto", host({ cpuFlags: new Set(["vmx"]), kvmModules: ["kvm_intel"] }));
  assert.deepEqual(intel, { name: "kvm", reason: "KVM (VT-x, /dev/kvm)" });
  assert.equal(chooseAccelerator("auto", host({ cpuFlags: new Set(["svm"]) })).name, "kvm");
  assert.equal(chooseAccelerator("kvm", host({ cpuFlags: new Set(["svm"]) })).name, "kvm");
});

test("auto falls back to software emulation and says why: no /dev/kvm, no VT-x/AMD-V, KVM that is PVM", () => {
  const noDevice = chooseAccelerator("auto", host({ kvmDevice: false, cpuFlags: new Set(["vmx"]) }));
  assert.equal(noDevice.name, "tcg");
  assert.match(noDevice.reason, /\/dev\/kvm is missing/);
  const pvm = chooseAccelerator("auto", host({ kvmModules: ["kvm_pvm"] }));
  assert.equal(pvm.name, "tcg");
  assert.match(pvm.reason, /no VT-x or AMD-V/);
  assert.match(pvm.reason, /PVM \(kvm_pvm\)/);
  const plain = chooseAccelerator("auto", host({}));
  assert.doesNotMatch(plain.reason, /PVM/);
  assert.equal(chooseAccelerator("tcg", host({ cpuFlags: new Set(["vmx"]) })).name, "tcg");
});

test("kvm asked for where it cannot run is an error that names the reason", () => {
  assert.throws(
    () => chooseAccelerator("kvm", host({ kvmModules: ["kvm_pvm"] })),
    (err: unknown) =>
      err instanceof FerryError &&
      err.code === "QEMU_KVM_UNAVAILABLE" &&
      /PVM/.test(err.message) &&
      /auto or tcg/.test(err.message),
  );
});

test("this host's virtualization reads without error and agrees with /proc/cpuinfo", async () => {
  const h = await readHostVirtualization();
  const { readFile } = await import("node:fs/promises");
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8");
  assert.equal(h.cpuFlags.has("vmx"), /^flags\s*:.*\bvmx\b/m.test(cpuinfo));
  assert.equal(h.cpuFlags.has("fpu"), /^flags\s*:.*\bfpu\b/m.test(cpuinfo));
  for (const m of h.kvmModules) assert.match(m, /^kvm_/);
});
