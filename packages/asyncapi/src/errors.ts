import { WharfError } from '@wharf/core';

/** One problem found in an AsyncAPI document: where (file and 1-based line) and what. */
export interface Diagnostic {
  /** Path of the file, as given or relative to the working directory. */
  readonly file: string;
  /** 1-based line, when known. */
  readonly line?: number;
  /** 1-based column, when known. */
  readonly column?: number;
  /** JSON pointer inside the document, when known. */
  readonly pointer?: string;
  readonly severity: 'error' | 'warning';
  /** Short rule name, e.g. `invalid-ref`, `yaml`, `asyncapi-schema`. */
  readonly code: string;
  readonly message: string;
}

/** Renders a diagnostic as `file:line:column error [code] message (at /pointer)`. */
export function formatDiagnostic(d: Diagnostic): string {
  const at = d.line === undefined ? d.file : `${d.file}:${d.line}${d.column === undefined ? '' : `:${d.column}`}`;
  const where = d.pointer ? ` (at ${d.pointer || '/'})` : '';
  return `${at} ${d.severity} [${d.code}] ${d.message}${where}`;
}

/** The document cannot be turned into code; `diagnostics` says where and why. */
export class CodegenError extends WharfError {
  override readonly name = 'CodegenError';
  readonly diagnostics: readonly Diagnostic[];
  constructor(summary: string, diagnostics: readonly Diagnostic[], options?: { cause?: unknown }) {
    const lines = diagnostics.map((d) => `  ${formatDiagnostic(d)}`).join('\n');
    super('ERR_WHARF_CODEGEN', 'asyncapi', lines ? `${summary}\n${lines}` : summary, options);
    this.diagnostics = diagnostics;
  }
}
