/**
 * `npm run check` step: fails when a relative import leaves the workspace of the file that holds it.
 * Workspaces use each other by package name (`@chainmeter/testkit/anvil`, `@chainmeter/api/testing/platform`),
 * so every dependency between them is declared in a package.json and resolved through its `exports`.
 * Biome's `noRestrictedImports` matches specifiers, not where they resolve to, so it cannot tell
 * `../../x` inside a workspace from the same text at its root.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ImportLeavingWorkspace {
  /** Relative to the repository root. */
  file: string;
  line: number;
  specifier: string;
}

const SOURCE = /\.(ts|tsx|mts|cts|js|jsx|mjs|cjs)$/;
const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'generated', '.ponder', '.data', 'test-artifacts']);
// `from '…'` (imports and re-exports), `import '…'`, `import('…')`, `require('…')` and `vi.mock('…')`.
const SPECIFIER =
  /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*|\bvi\.mock\s*\(\s*)(['"])(\.{1,2}\/[^'"]*)\1/g;

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) files.push(...sourceFiles(full));
    } else if (SOURCE.test(entry.name)) {
      files.push(full);
    }
  }
  return files;
}

/** Every relative import, in the workspaces that `root`'s package.json lists, that resolves outside its own. */
export function findImportsLeavingWorkspace(root: string): ImportLeavingWorkspace[] {
  const { workspaces } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    workspaces: string[];
  };
  const found: ImportLeavingWorkspace[] = [];
  for (const workspace of workspaces) {
    const workspaceDir = path.join(root, workspace);
    for (const file of sourceFiles(workspaceDir)) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((text, index) => {
        for (const match of text.matchAll(SPECIFIER)) {
          const specifier = match[2] as string;
          const target = path.relative(workspaceDir, path.resolve(path.dirname(file), specifier));
          if (target.startsWith('..') || path.isAbsolute(target)) {
            found.push({ file: path.relative(root, file), line: index + 1, specifier });
          }
        }
      });
    }
  }
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const found = findImportsLeavingWorkspace(root);
  for (const { file, line, specifier } of found) {
    console.error(`${file}:${line}: '${specifier}' leaves its workspace; import it by package name`);
  }
  if (found.length > 0) process.exit(1);
}
