// Flat config: typescript-eslint's recommended rules, plus the few we rely on at module boundaries.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'src/**/generated/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // Layering (docs/architecture.md): codecs know nothing of Loom; roles meet only through src/api.
  ...layer(['src/ovsdb/**', 'src/openflow/**', 'src/netlink/**', 'src/http2/**', 'src/common/**'], ['controller', 'agent', 'cni', 'cli', 'api'],
    'a protocol codec or src/common is Loom-agnostic: it may not import a role or the contracts'),
  ...layer(['src/api/**'], ['controller', 'agent', 'cni', 'cli'], 'the contracts may not import a role'),
  ...layer(['src/controller/**'], ['agent', 'cni', 'cli'], 'roles meet only through src/api'),
  // The agent hosts the CNI plugin's logic: its composition root alone wires src/cni in.
  ...layer(['src/agent/**'], ['controller', 'cni', 'cli'], 'roles meet only through src/api', ['src/agent/main.ts']),
  ...layer(['src/agent/main.ts'], ['controller', 'cli'], 'roles meet only through src/api'),
  ...layer(['src/cni/**'], ['controller', 'agent', 'cli'], 'roles meet only through src/api'),
  ...layer(['src/cli/**'], ['controller', 'agent', 'cni'], 'roles meet only through src/api'),
);

/** A rule set that refuses, in `files`, relative imports that climb into any of `dirs` under src/. */
function layer(files, dirs, message, ignores = []) {
  const regex = `^(\\.\\./)+(${dirs.join('|')})/`;
  return [{ files, ignores, rules: { 'no-restricted-imports': ['error', { patterns: [{ regex, message }] }] } }];
}
