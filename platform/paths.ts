import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

let root: string | undefined;

/**
 * The repository root (the folder holding package.json), found from this file so the same code
 * works from source (tests) and from dist/ (npm start, the image). Migrations, the proto
 * descriptor set and dev certificates are read relative to it.
 */
export function repoRoot(): string {
  if (root) return root;
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = up;
  }
  return (root = dir);
}

export const repoPath = (...segments: string[]): string => join(repoRoot(), ...segments);
