// Domain errors of skiffd. Modules throw these; the CRI layer maps them to gRPC
// status codes in one place (grpcCode). A message names the id or field.

/** gRPC status codes (google.rpc.Code) the CRI layer answers with. */
export enum GrpcCode {
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  UNAUTHENTICATED = 16,
}

export abstract class SkiffError extends Error {
  abstract readonly code: GrpcCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class InvalidArgument extends SkiffError {
  readonly code = GrpcCode.INVALID_ARGUMENT;
}
export class NotFound extends SkiffError {
  readonly code = GrpcCode.NOT_FOUND;
}
export class AlreadyExists extends SkiffError {
  readonly code = GrpcCode.ALREADY_EXISTS;
}
export class FailedPrecondition extends SkiffError {
  readonly code = GrpcCode.FAILED_PRECONDITION;
}
export class DeadlineExceeded extends SkiffError {
  readonly code = GrpcCode.DEADLINE_EXCEEDED;
}
export class Unauthenticated extends SkiffError {
  readonly code = GrpcCode.UNAUTHENTICATED;
}
export class Unavailable extends SkiffError {
  readonly code = GrpcCode.UNAVAILABLE;
}
export class ResourceExhausted extends SkiffError {
  readonly code = GrpcCode.RESOURCE_EXHAUSTED;
}
/** A failure the CRI's reference runtime answers with no code of its own (UNKNOWN), where
 * kubelet reads only the message: matched so that clients see what containerd answers. */
export class Unknown extends SkiffError {
  readonly code = GrpcCode.UNKNOWN;
}
export class Internal extends SkiffError {
  readonly code = GrpcCode.INTERNAL;
}

/** An error from another layer (the shim) that carries a status of its own. */
export interface CodedError extends Error {
  readonly grpcStatus: GrpcCode;
}

/** The gRPC code for any thrown value: ours keep theirs, anything else is INTERNAL. */
export function grpcCode(e: unknown): GrpcCode {
  if (e instanceof SkiffError) return e.code;
  const coded = (e as Partial<CodedError> | null)?.grpcStatus;
  return typeof coded === 'number' ? coded : GrpcCode.INTERNAL;
}

export class Unimplemented extends SkiffError {
  readonly code = GrpcCode.UNIMPLEMENTED;
}
