/**
 * The SLO alert rules (ops/prometheus/rules) as code: valid for Prometheus (`promtool check
 * rules`), behaving as their unit tests say (`promtool test rules ops/prometheus/tests/*.yaml`),
 * each alert linked to a runbook in the repository, and each runbook to an alert. promtool is
 * Debian's `prometheus` package: `bash scripts/ensure-infra.sh --prometheus` installs it (as
 * root; .ci/run does).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath } from '../../platform/paths';
import { RULES_DIR, ruleGroups } from '../../scripts/prometheus-rule';

const TESTS_DIR = repoPath('ops', 'prometheus', 'tests');
const RUNBOOKS_DIR = repoPath('ops', 'runbooks');
const promtool = process.env.PROMTOOL ?? 'promtool';

function run(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(promtool, args, { encoding: 'utf8', cwd: repoPath() });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error(`${promtool} not found: install Debian's prometheus package (\`bash scripts/ensure-infra.sh --prometheus\` as root, or apt-get install prometheus), or set PROMTOOL`);
  }
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const yamlIn = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));

describe('Prometheus alert rules (ops/prometheus)', () => {
  const alerts = ruleGroups().flatMap((g) => g.rules.filter((r) => r.alert));

  it('pass `promtool check rules`', () => {
    const r = run(['check', 'rules', ...yamlIn(RULES_DIR)]);
    expect({ status: r.status, output: r.status === 0 ? 'ok' : r.output }).toEqual({ status: 0, output: 'ok' });
  });

  it('pass their unit tests: `promtool test rules ops/prometheus/tests/*.yaml`', () => {
    const files = yamlIn(TESTS_DIR);
    expect(files.length).toBeGreaterThan(0);
    const r = run(['test', 'rules', ...files]);
    expect({ status: r.status, output: r.status === 0 ? 'ok' : r.output }).toEqual({ status: 0, output: 'ok' });
  });

  it('every alert is exercised by a unit test that expects it to fire', () => {
    const tests = yamlIn(TESTS_DIR).map((f) => readFileSync(f, 'utf8')).join('\n');
    const firing = (name: string) => new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels:`).test(tests);
    expect(alerts.map((a) => a.alert!).filter((name) => !firing(name))).toEqual([]);
  });

  it('every alert has a severity and a runbook_url that is a runbook in this repository (ops/runbooks/<alert>.md)', () => {
    const problems: string[] = [];
    for (const a of alerts) {
      const url = a.annotations?.runbook_url;
      if (!['page', 'ticket'].includes(a.labels?.severity ?? '')) problems.push(`${a.alert}: severity ${a.labels?.severity ?? 'unset'}, want page or ticket`);
      if (url !== `ops/runbooks/${a.alert}.md`) problems.push(`${a.alert}: runbook_url ${url ?? 'unset'}, want ops/runbooks/${a.alert}.md`);
      else if (!existsSync(repoPath(url))) problems.push(`${a.alert}: ${url} does not exist`);
    }
    expect(problems).toEqual([]);
  });

  it('every runbook belongs to an alert', () => {
    const names = new Set(alerts.map((a) => a.alert));
    expect(readdirSync(RUNBOOKS_DIR).filter((f) => f.endsWith('.md') && !names.has(f.replace(/\.md$/, '')))).toEqual([]);
  });
});
