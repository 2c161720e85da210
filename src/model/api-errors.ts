/**
 * MGN's error shapes as FerryErrors. The `code` is the MGN exception name
 * (ValidationException, ResourceNotFoundException, …); `details` carry the
 * shape's extra members (`reason`, `fieldList`, `resourceId`, …). The control
 * plane's one error mapper turns these into the HTTP status, the
 * `x-amzn-ErrorType` header and the JSON body.
 */
import { FerryError } from "../lib/errors.ts";

export const MGN_ERROR_STATUS = {
  ValidationException: 400,
  UninitializedAccountException: 400,
  AccessDeniedException: 403,
  ResourceNotFoundException: 404,
  ConflictException: 409,
  ServiceQuotaExceededException: 402,
  ThrottlingException: 429,
  InternalServerException: 500,
  // Not in MGN's model but sent by AWS front ends for authentication failures;
  // the SDKs and the CLI map them by name.
  UnrecognizedClientException: 403,
  InvalidSignatureException: 403,
  IncompleteSignatureException: 400,
  MissingAuthenticationTokenException: 403,
  NotFoundException: 404,
} as const;

export type MgnErrorType = keyof typeof MGN_ERROR_STATUS;

export function isMgnErrorType(code: string): code is MgnErrorType {
  return Object.hasOwn(MGN_ERROR_STATUS, code);
}

export type ValidationReason = "unknownOperation" | "cannotParse" | "fieldValidationFailed" | "other";

export interface ValidationField {
  name: string;
  message: string;
}

function mgnError(type: MgnErrorType, message: string, details: Record<string, unknown> = {}): FerryError {
  return new FerryError(type, message, { kind: "user", details });
}

export function validationError(
  message: string,
  reason: ValidationReason = "other",
  fieldList?: ValidationField[],
): FerryError {
  return mgnError("ValidationException", message, { reason, ...(fieldList ? { fieldList } : {}) });
}

export type ResourceType = "SOURCE_SERVER" | "REPLICATION_CONFIGURATION_TEMPLATE" | "JOB" | "RESOURCE";

export function notFound(resourceType: ResourceType, resourceId: string, message?: string): FerryError {
  return mgnError(
    "ResourceNotFoundException",
    message ??
      `${resourceLabel(resourceType)} ${resourceId} was not found. Check the ID (list them with the matching Describe operation).`,
    { resourceId, resourceType },
  );
}

export function conflict(resourceType: ResourceType, resourceId: string, message: string): FerryError {
  return mgnError("ConflictException", message, { resourceId, resourceType });
}

export function uninitialized(): FerryError {
  return mgnError(
    "UninitializedAccountException",
    "The service is not initialized for this account. Call InitializeService first (aws mgn initialize-service).",
  );
}

export function accessDenied(message: string): FerryError {
  return mgnError("AccessDeniedException", message);
}

export function authError(
  type:
    | "UnrecognizedClientException"
    | "InvalidSignatureException"
    | "IncompleteSignatureException"
    | "MissingAuthenticationTokenException",
  message: string,
): FerryError {
  return mgnError(type, message);
}

function resourceLabel(t: ResourceType): string {
  switch (t) {
    case "SOURCE_SERVER":
      return "Source server";
    case "REPLICATION_CONFIGURATION_TEMPLATE":
      return "Replication configuration template";
    case "JOB":
      return "Job";
    default:
      return "Resource";
  }
}
