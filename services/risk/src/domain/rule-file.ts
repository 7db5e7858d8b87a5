import { createHash } from 'node:crypto';
import { load } from 'js-yaml';
import type { z } from 'zod';
import { modelSchema, type LogisticModel } from './model';
import { ruleSetSchema, type RuleSet } from './rules';

/** A rule or model file that cannot be used; the message names the file and the first problem. */
export class RuleFileInvalid extends Error {
  override readonly name = 'RuleFileInvalid';
}

function parseText(text: string, filename: string): unknown {
  try {
    return filename.endsWith('.json') ? JSON.parse(text) : load(text);
  } catch (err) {
    throw new RuleFileInvalid(`${filename}: not valid ${filename.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
}

function validate<T>(schema: z.ZodType<T>, value: unknown, filename: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new RuleFileInvalid(`${filename}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
}

/**
 * The version a decision records: the file's own `version` plus a short content hash, so an
 * edit that forgot to bump the version is still told apart in Explain and in backtests.
 */
const versioned = (version: string, text: string) => `${version}+${createHash('sha256').update(text).digest('hex').slice(0, 8)}`;

export function parseRuleSet(text: string, filename: string): RuleSet {
  const set = validate(ruleSetSchema, parseText(text, filename), filename);
  return { ...set, version: versioned(set.version, text) };
}

export function parseModel(text: string, filename: string): LogisticModel {
  const model = validate(modelSchema as unknown as z.ZodType<LogisticModel>, parseText(text, filename), filename);
  return { ...model, version: versioned(model.version, text) };
}
