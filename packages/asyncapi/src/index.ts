/**
 * @wharf/asyncapi — AsyncAPI contracts for Wharf.
 *
 * Runtime (light: no parser, no Ajv compiler): `createTypedBus`, `contractValidator`, the runtime
 * contract types and the Ajv helpers that generated validators import.
 * Code generation (`generate`, `runCodegen`): loads `@asyncapi/parser` and Ajv lazily, on first call.
 */
import type { CodegenIo } from './codegen/cli.js';
import type { GenerateOptions, GenerateResult } from './codegen/generate.js';

export type { CodegenIo } from './codegen/cli.js';
export type { GeneratedFile, GenerateOptions, GenerateResult } from './codegen/generate.js';
export type { ExampleFailure } from './codegen/validators.js';
export type { Diagnostic } from './errors.js';
export { CodegenError, formatDiagnostic } from './errors.js';
export type { ContractGroup } from './groups.js';
export { contractGroups, loadContractGroups } from './groups.js';
export { loadPayloadValidator, payloadValidator } from './payload-validator.js';
export { ajvRuntime } from './runtime/ajv-runtime.js';
export type { AvroSchema } from './runtime/avro.js';
export { avroCodec } from './runtime/avro.js';
export type {
  CompiledValidator,
  ContractTypes,
  PayloadCodec,
  RuntimeChannel,
  RuntimeContract,
  RuntimeMessage,
  RuntimeOperation,
  RuntimeReply,
  ValidatorError,
} from './runtime/contract.js';
export type {
  OnOptions,
  OnResult,
  OperationEvent,
  OperationMessage,
  OperationPayload,
  ReceiveOperation,
  ReplyEvent,
  ReplyMessage,
  ReplyPayload,
  RequestOperation,
  RespondOperation,
  SendAttributes,
  SendOperation,
  SendOptions,
  TypedBus,
  TypedBusOptions,
  TypedRequestOptions,
} from './runtime/typed-bus.js';
export { createTypedBus } from './runtime/typed-bus.js';
export type { ContractValidatorOptions } from './runtime/validator.js';
export { ContractIndex, contractValidator } from './runtime/validator.js';

/** Generates contract code from an AsyncAPI document; see `codegen/generate.ts`. */
export async function generate(specPath: string, options: GenerateOptions): Promise<GenerateResult> {
  const codegen = await import('./codegen/generate.js');
  return codegen.generate(specPath, options);
}

/** The `wharf codegen <spec> --out <dir> [--check]` command; resolves with the exit code. */
export async function runCodegen(args: readonly string[], io?: CodegenIo): Promise<number> {
  const cli = await import('./codegen/cli.js');
  return cli.runCodegen(args, io);
}
