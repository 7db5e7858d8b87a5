import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { repoPath } from '../platform/paths';

// The stubs in gen/ are committed (so `npm ci` needs no code generator); this keeps them honest.
const buf = repoPath('node_modules', '.bin', 'buf');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

describe('proto contracts', () => {
  it('pass buf lint', () => {
    expect(() => execFileSync(buf, ['lint'], { cwd: repoPath(), stdio: 'pipe' })).not.toThrow();
  });

  // The contract as last released (proto/BREAKING_BASELINE, a commit of this repository): no
  // field, method or enum value a deployed caller may use is removed, renumbered or retyped.
  // After a deliberate, coordinated break, move the baseline to the commit that made it.
  it('make no breaking change against the released contract (buf breaking, FILE rules)', () => {
    const baseline = readFileSync(repoPath('proto', 'BREAKING_BASELINE'), 'utf8').trim();
    expect(baseline).toMatch(/^[0-9a-f]{40}$/);
    expect(() => execFileSync(buf, ['breaking', '--against', `.git#ref=${baseline}`], { cwd: repoPath(), stdio: 'pipe' })).not.toThrow();
  });

  it('match the committed generated stubs (run `npm run gen` after editing proto/)', () => {
    const out = mkdtempSync(join(tmpdir(), 'wp-gen-'));
    try {
      execFileSync(buf, ['generate', '-o', out], { cwd: repoPath(), stdio: 'pipe' });
      execFileSync(buf, ['build', '-o', join(out, 'gen', 'descriptor.binpb')], { cwd: repoPath(), stdio: 'pipe' });
      const fresh = files(join(out, 'gen')).map((f) => relative(join(out, 'gen'), f)).sort();
      const committed = files(repoPath('gen')).map((f) => relative(repoPath('gen'), f)).sort();
      expect(committed).toEqual(fresh);
      const stale = fresh.filter((f) => !readFileSync(join(out, 'gen', f)).equals(readFileSync(repoPath('gen', f))));
      expect(stale).toEqual([]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
