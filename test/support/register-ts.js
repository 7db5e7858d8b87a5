// Lets a plain `node` child process load the TypeScript sources, compiled on the fly by the
// same SWC that jest uses. Needed because embedded PGlite cannot start inside jest's module
// sandbox (it dynamically imports node builtins, which jest refuses without
// --experimental-vm-modules); used by the settlement and tokenization PGlite scenarios.
const { readFileSync } = require('node:fs');
const { transformSync } = require('@swc/core');

require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(readFileSync(filename, 'utf8'), {
    filename,
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  });
  module._compile(code, filename);
};
