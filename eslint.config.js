import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**', '.scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': ['error', { allow: ['error'] }]
    }
  },
  {
    files: ['src/demo/**', 'bench/**', 'test/**', 'eslint.config.js'],
    rules: { 'no-console': 'off' }
  }
)
