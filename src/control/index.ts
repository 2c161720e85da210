/** The control plane's public entry points (used by the CLI, `ferry up`, tests and benchmarks). */
export { createControlPlane } from "./control-plane.ts";
export type { ControlPlane } from "./control-plane.ts";
export { startServer } from "./server.ts";
export type { ServerHandle, ServerOptions } from "./server.ts";
export type { ControlPlaneOptions } from "./options.ts";
