/** Errors the API reports to clients; `code` is the gRPC status name it maps to. */

export type ApiErrorCode =
  | 'INVALID_ARGUMENT'
  | 'ALREADY_EXISTS'
  | 'NOT_FOUND'
  | 'FAILED_PRECONDITION'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'INTERNAL';

/** A request the controller refuses; the message is written for an operator. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    /** A follower's refusal of a write: the leader's API address (sent as the `loom-leader` trailer). */
    readonly leader = '',
  ) {
    super(message);
  }
}

/** gRPC trailer naming the leader in a follower's refusal, so clients need not parse the message. */
export const LEADER_TRAILER = 'loom-leader';

export const invalid = (msg: string): ApiError => new ApiError('INVALID_ARGUMENT', msg);
export const alreadyExists = (msg: string): ApiError => new ApiError('ALREADY_EXISTS', msg);
export const notFound = (msg: string): ApiError => new ApiError('NOT_FOUND', msg);
export const failedPrecondition = (msg: string): ApiError => new ApiError('FAILED_PRECONDITION', msg);
export const exhausted = (msg: string): ApiError => new ApiError('RESOURCE_EXHAUSTED', msg);
export const permissionDenied = (msg: string): ApiError => new ApiError('PERMISSION_DENIED', msg);
