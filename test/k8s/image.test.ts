/**
 * Static checks of the Dockerfile and .dockerignore (no Docker engine needed): the image is
 * built the way the manifests expect (multi-stage node:20-bookworm-slim, production
 * dependencies only at run time, a numeric non-root USER equal to the pods' runAsUser), and
 * neither a secret nor local build output can reach the build context.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, Rendered, renderOverlay, OVERLAYS } from './render';
import { SERVICE_NAMES } from './services';
import { workloads } from './workloads';

const BASE_IMAGE = 'node:20-bookworm-slim';

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (comments dropped, continuations joined). */
function parseDockerfile(source: string): { args: Record<string, string>; stages: Stage[] } {
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let text = lines[i]!;
    if (/^\s*(#|$)/.test(text)) continue;
    while (/\\\s*$/.test(text) && i + 1 < lines.length) {
      i++;
      if (/^\s*#/.test(lines[i]!)) continue;
      text = text.replace(/\\\s*$/, ' ') + lines[i]!;
    }
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(text);
    if (!match) continue;
    const instruction = { keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start };
    if (instruction.keyword === 'FROM') {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      stages.push({ from: from?.[1] ?? instruction.args, name: from?.[2], instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [name, value] = instruction.args.split('=');
        if (name) args[name] = value ?? '';
      }
    } else {
      stages[stages.length - 1]!.instructions.push(instruction);
    }
  }
  return { args, stages };
}

/**
 * The build context's include/exclude decision for one file, as Docker computes it: the last
 * pattern that matches the path or one of its parent folders wins; `!` re-includes.
 */
function dockerignored(patterns: string[], file: string): boolean {
  const toRegExp = (pattern: string) => {
    let re = '';
    for (let i = 0; i < pattern.length; i++) {
      const ch = pattern[i]!;
      if (pattern.startsWith('**/', i)) {
        re += '(?:.*/)?';
        i += 2;
      } else if (pattern.startsWith('**', i)) {
        re += '.*';
        i += 1;
      } else if (ch === '*') re += '[^/]*';
      else if (ch === '?') re += '[^/]';
      else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`^${re}$`);
  };
  const parents = file.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = path.posix.normalize((negated ? raw.slice(1) : raw).trim()).replace(/^\//, '');
    if (parents.some((p) => toRegExp(pattern).test(p))) excluded = !negated;
  }
  return excluded;
}

describe('Dockerfile', () => {
  const dockerfile = parseDockerfile(fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  const stages = dockerfile.stages;
  const final = stages[stages.length - 1]!;
  const resolve = (image: string) => image.replace(/^\$\{?(\w+)\}?$/, (_, name: string) => dockerfile.args[name] ?? image);
  const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);

  it('is multi-stage on node:20-bookworm-slim', () => {
    const problems: string[] = [];
    const names = new Set<string>();
    for (const stage of stages) {
      const from = resolve(stage.from);
      if (!names.has(from) && from.split('@')[0] !== BASE_IMAGE) problems.push(`FROM ${stage.from} (${from}): want ${BASE_IMAGE} or an earlier stage`);
      if (stage.name) names.add(stage.name);
    }
    if (stages.length < 2) problems.push(`${stages.length} stage(s): want a build stage and a runtime stage`);
    expect(problems).toEqual([]);
  });

  it('builds with npm ci + npm run build, and runs with production dependencies only', () => {
    const problems: string[] = [];
    const builder = stages.find((s) => runs(s).some((r) => /\bnpm run build\b/.test(r)));
    if (!builder) problems.push('no stage runs `npm run build`');
    const chain = (stage: Stage | undefined): Stage[] => (stage ? [stage, ...chain(stages.find((s) => s.name === stage.from))] : []);
    if (builder && !chain(builder).some((s) => runs(s).some((r) => /\bnpm ci\b(?!.*--omit=dev)/.test(r)))) {
      problems.push('the build stage (or one it starts FROM) does not run `npm ci` with dev dependencies');
    }
    const prodDeps = stages.find((s) => runs(s).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)));
    if (!prodDeps) problems.push('no stage runs `npm ci --omit=dev`');
    const copiesFrom = final.instructions.filter((i) => i.keyword === 'COPY').map((i) => /--from=(\S+)/.exec(i.args)?.[1]);
    if (prodDeps?.name && !copiesFrom.includes(prodDeps.name)) problems.push(`the final stage does not copy node_modules from ${prodDeps.name}`);
    if (resolve(final.from) !== BASE_IMAGE && !resolve(final.from).startsWith(`${BASE_IMAGE}@`)) {
      problems.push(`the final stage starts FROM ${final.from}: want a fresh ${BASE_IMAGE} (no toolchain at run time)`);
    }
    if (!stages.some((s) => s.name === 'dev')) problems.push('no `dev` stage (the Tiltfile builds target dev)');
    expect(problems).toEqual([]);
  });

  it('bakes in no secret', () => {
    const problems: string[] = [];
    for (const stage of stages) {
      for (const i of stage.instructions) {
        if ((i.keyword === 'ENV' || i.keyword === 'ARG') && /(KEY|KEKS|SECRET|PASSWORD|TOKEN|DATABASE_URL|REDIS_URL)\b/i.test(i.args)) {
          problems.push(`Dockerfile:${i.line}: ${i.keyword} ${i.args.split(/[=\s]/)[0]} looks like a secret; secrets come from Kubernetes Secrets at run time`);
        }
        if ((i.keyword === 'COPY' || i.keyword === 'ADD') && !/--from=/.test(i.args) && /(^|\s)\.(\s|$)|\.env|\.key\b|\.pem\b|k8s/.test(i.args)) {
          problems.push(`Dockerfile:${i.line}: ${i.keyword} ${i.args} copies the whole context or secret material`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it.each(OVERLAYS)('runs as a numeric non-root USER, the uid the %s pods run as', (overlay) => {
    const user = [...final.instructions].reverse().find((i) => i.keyword === 'USER')?.args;
    const problems: string[] = [];
    const uid = user && /^(\d+)(:\d+)?$/.test(user) ? Number(user.split(':')[0]) : undefined;
    if (uid === undefined) problems.push(`final stage USER is ${user ?? 'unset'}: want numeric uid[:gid] so Kubernetes can verify runAsNonRoot`);
    else if (uid === 0) problems.push('final stage USER is root');
    const r = new Rendered(overlay, renderOverlay(overlay));
    for (const w of workloads(r).filter((x) => SERVICE_NAMES.includes(x.name))) {
      const runAs = w.podSpec.containers[0]?.securityContext?.runAsUser ?? w.podSpec.securityContext?.runAsUser;
      if (uid !== undefined && runAs !== uid) problems.push(`${w.name}: runAsUser ${runAs ?? 'unset'}, the image's USER is ${uid}`);
    }
    expect(problems).toEqual([]);
  });
});

describe('.dockerignore', () => {
  const patterns = fs
    .readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  it.each([
    'node_modules/pg/package.json',
    'dist/services/gateway/src/main.js',
    '.git/config',
    '.data/certs/ca.key',
    '.env',
    'services/gateway/.env.local',
    'k8s/overlays/dev/certs/gateway.key',
    'k8s/overlays/dev/secrets/tokenization-keys.env',
    'services/gateway/test/authorize.test.ts',
    'platform/money.test.ts',
  ])('keeps %s out of the build context', (file) => {
    expect(dockerignored(patterns, file) ? [] : [`${file} would be sent to the Docker build context`]).toEqual([]);
  });

  it.each([
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'gen/descriptor.binpb',
    'platform/config.ts',
    'platform/migrations/001_outbox.sql',
    'services/risk/rules/default.yaml',
    'services/settlement/src/config.ts',
  ])('sends %s to the build context', (file) => {
    expect(dockerignored(patterns, file) ? [`${file} is excluded by .dockerignore but the build needs it`] : []).toEqual([]);
  });
});
