/**
 * Typed `transact` operations (RFC 7047 section 5.2), conditions and mutations, and the typed
 * results for each operation.
 */
import type { Row, Uuid, Value } from './values.js';

export type ConditionFunction = '<' | '<=' | '==' | '!=' | '>=' | '>' | 'includes' | 'excludes';
/** `[column, function, value]`. */
export type Condition = readonly [string, ConditionFunction, Value];

export type Mutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';
/** `[column, mutator, value]`. */
export type Mutation = readonly [string, Mutator, Value];

/** Columns to values, as written in insert/update/wait rows. */
export type RowData = Record<string, Value>;

export interface InsertOp {
  op: 'insert';
  table: string;
  row: RowData;
  /** Names the new row so later operations can refer to it as `namedUuid(name)`. */
  'uuid-name'?: string;
  /** Requests a specific UUID for the new row, as a plain string (ovsdb-server extension). */
  uuid?: string;
}
export interface SelectOp {
  op: 'select';
  table: string;
  where: readonly Condition[];
  columns?: readonly string[];
}
export interface UpdateOp {
  op: 'update';
  table: string;
  where: readonly Condition[];
  row: RowData;
}
export interface MutateOp {
  op: 'mutate';
  table: string;
  where: readonly Condition[];
  mutations: readonly Mutation[];
}
export interface DeleteOp {
  op: 'delete';
  table: string;
  where: readonly Condition[];
}
export interface WaitOp {
  op: 'wait';
  table: string;
  where: readonly Condition[];
  columns: readonly string[];
  until: '==' | '!=';
  rows: readonly RowData[];
  /** Milliseconds; omitted means wait forever. */
  timeout?: number;
}
export interface CommitOp {
  op: 'commit';
  durable: boolean;
}
export interface AbortOp {
  op: 'abort';
}
export interface CommentOp {
  op: 'comment';
  comment: string;
}
export interface AssertOp {
  op: 'assert';
  lock: string;
}

export type Operation =
  | InsertOp
  | SelectOp
  | UpdateOp
  | MutateOp
  | DeleteOp
  | WaitOp
  | CommitOp
  | AbortOp
  | CommentOp
  | AssertOp;

export interface InsertResult {
  uuid: Uuid;
}
export interface SelectResult {
  rows: Row[];
}
export interface CountResult {
  count: number;
}
export type EmptyResult = Record<string, never>;

/** The result type of one operation. */
export type ResultOf<O extends Operation> = O extends InsertOp
  ? InsertResult
  : O extends SelectOp
    ? SelectResult
    : O extends UpdateOp | MutateOp | DeleteOp
      ? CountResult
      : EmptyResult;

/** The result tuple of a list of operations. */
export type ResultsOf<Ops extends readonly Operation[]> = { -readonly [I in keyof Ops]: ResultOf<Ops[I]> };
