import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';
import { repoPath } from '../platform/paths';

/** Where the alert rules live (the source of truth, tested with promtool). */
export const RULES_DIR = repoPath('ops', 'prometheus', 'rules');
/** The prod overlay's PrometheusRule, generated from RULES_DIR by `npm run ops:render`. */
export const PROMETHEUS_RULE_FILE = repoPath('k8s', 'overlays', 'prod', 'monitoring', 'prometheus-rule.yaml');

export interface RuleGroup {
  name: string;
  rules: Array<{ alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }>;
}

/** Every group of every ops/prometheus/rules/*.yaml file, in file then group order. */
export function ruleGroups(dir = RULES_DIR): RuleGroup[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => (load(readFileSync(join(dir, f), 'utf8')) as { groups: RuleGroup[] }).groups);
}

/**
 * The PrometheusRule for the prometheus-operator: the same groups, unchanged, labelled so a
 * Prometheus whose ruleSelector picks `app.kubernetes.io/part-of: wristpay` loads them.
 */
export function renderPrometheusRule(groups = ruleGroups()): string {
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'wristpay-slos', labels: { 'app.kubernetes.io/name': 'wristpay-slos', 'app.kubernetes.io/component': 'monitoring', 'app.kubernetes.io/part-of': 'wristpay' } },
    spec: { groups },
  };
  return `# Generated from ops/prometheus/rules/*.yaml by \`npm run ops:render\`; do not edit (test/ops checks it is current).\n${dump(rule, { lineWidth: -1, noRefs: true })}`;
}

if (require.main === module) {
  writeFileSync(PROMETHEUS_RULE_FILE, renderPrometheusRule());
  process.stdout.write(`wrote ${PROMETHEUS_RULE_FILE}\n`);
}
