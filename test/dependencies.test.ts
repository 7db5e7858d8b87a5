import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { repoPath } from '../platform/paths';

/** Source files that run in the production image (Dockerfile: `npm ci --omit=dev`): no tests, tools or benches. */
function runtimeSources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'test' || name === 'tools' ? [] : runtimeSources(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

/** `@scope/name` or `name` of a bare import specifier. */
const packageOf = (specifier: string): string => (specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);

describe('production dependencies', () => {
  it('include every package the services, platform and generated stubs import (the image installs only these)', () => {
    const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const builtins = new Set(builtinModules);
    const missing: string[] = [];
    for (const file of [...runtimeSources(repoPath('gen')), ...runtimeSources(repoPath('platform')), ...runtimeSources(repoPath('services'))]) {
      const source = readFileSync(file, 'utf8');
      for (const match of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const specifier = match[1] ?? match[2];
        if (!specifier || specifier.startsWith('.') || specifier.startsWith('node:')) continue;
        const name = packageOf(specifier);
        if (builtins.has(name) || name in pkg.dependencies) continue;
        missing.push(`${relative(repoPath(), file)} imports ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
