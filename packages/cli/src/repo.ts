import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Wharf repository root when the CLI runs from a checkout (for scripts/), else undefined. */
export function repoRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml')) && existsSync(join(dir, 'scripts'))) return dir;
    dir = dirname(dir);
  }
  return undefined;
}
