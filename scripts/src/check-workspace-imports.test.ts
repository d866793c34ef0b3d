import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findImportsLeavingWorkspace } from './check-workspace-imports.ts';

const root = mkdtempSync(path.join(tmpdir(), 'cm-imports-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// The fixtures' specifiers are assembled so that this file's own text holds no import that leaves `scripts/`.
const up = (levels: number) => '../'.repeat(levels);

function write(file: string, text: string): void {
  mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
  writeFileSync(path.join(root, file), text);
}

describe('findImportsLeavingWorkspace', () => {
  it('names relative imports that resolve outside their workspace, and only those', () => {
    write('package.json', JSON.stringify({ workspaces: ['api', 'kit'] }));
    write('kit/src/anvil.ts', 'export const anvil = 1;\n');
    write(
      'api/src/modules/ledger/ledger.ts',
      [
        `import { builder } from '${up(2)}schema/builder.ts';`,
        `import { anvil } from '${up(4)}kit/src/anvil.ts';`,
        `export { anvil } from '${up(4)}kit/src/anvil.ts';`,
        `const lazy = await import('${up(4)}kit/src/anvil.ts');`,
        "import { named } from '@chainmeter/kit/anvil';",
      ].join('\n'),
    );
    write('api/test/x.test.ts', `vi.mock('${up(2)}kit/src/anvil.ts');\nimport '${up(1)}src/main.ts';\n`);
    write('api/node_modules/dep/index.js', `import '${up(3)}kit/src/anvil.ts';\n`);

    expect(findImportsLeavingWorkspace(root)).toEqual([
      { file: 'api/src/modules/ledger/ledger.ts', line: 2, specifier: '../../../../kit/src/anvil.ts' },
      { file: 'api/src/modules/ledger/ledger.ts', line: 3, specifier: '../../../../kit/src/anvil.ts' },
      { file: 'api/src/modules/ledger/ledger.ts', line: 4, specifier: '../../../../kit/src/anvil.ts' },
      { file: 'api/test/x.test.ts', line: 1, specifier: '../../kit/src/anvil.ts' },
    ]);
  });
});
