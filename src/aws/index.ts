/** The AWS kit's public surface: what src/cli/aws.ts uses. */
export { loadInventory } from "./model/loader.ts";
export type { AwsInventory } from "./model/inventory.ts";
export { checkInventory, type CheckOptions } from "./eval/check.ts";
export type { CheckReport, Finding, FlowResult, Derived, FlowId } from "./eval/findings.ts";
export { flowsForError } from "./eval/from-error.ts";
export { renderTerminal, toJson } from "./report/terminal.ts";
export { renderHtml } from "./report/html.ts";
export { synthesizePlan, buildPlanStack, type PlanOptions, type CfnTemplate } from "./plan/synthesize.ts";
export { MgnStagingArea, type MgnStagingAreaProps } from "./plan/staging-area.ts";
export { deployPlan } from "./plan/to-describe.ts";
export { previewPlan } from "./plan/preview.ts";
export { collectInventory, type CollectOptions } from "./collect/collect.ts";
