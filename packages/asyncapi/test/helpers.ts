import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '../../..');
export const generatedDir = join(here, 'generated');

/** Type-checks files with the repo's strict settings; returns the diagnostics as text lines. */
export function typecheck(files: readonly string[]): string[] {
  mkdirSync(generatedDir, { recursive: true });
  const configPath = join(generatedDir, 'tsconfig.check.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      extends: '../../../../tsconfig.base.json',
      compilerOptions: { noEmit: true, customConditions: ['wharf-source'], rootDir: '../../../..' },
      files,
    }),
  );
  const config = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
  );
  if (!config) throw new Error('cannot read the tsconfig for type checks');
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return text;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${d.file.fileName}:${line + 1}: ${text}`;
  });
}
