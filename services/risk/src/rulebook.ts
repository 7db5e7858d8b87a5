import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from '../../../platform/log';
import type { LogisticModel } from './domain/model';
import { parseModel, parseRuleSet } from './domain/rule-file';
import type { RuleSet } from './domain/rules';

export interface Book {
  rules: RuleSet;
  model: LogisticModel;
}

/** Reads and validates both files; throws RuleFileInvalid (or a read error) naming the file. */
export async function loadBook(rulesFile: string, modelFile: string): Promise<Book> {
  const [rulesText, modelText] = await Promise.all([readFile(rulesFile, 'utf8'), readFile(modelFile, 'utf8')]);
  return { rules: parseRuleSet(rulesText, basename(rulesFile)), model: parseModel(modelText, basename(modelFile)) };
}

/**
 * The rule set and model in force. `reload()` swaps both in only when both files validate; a
 * broken file is refused with a logged reason and the last good book stays in force. `watch()`
 * reloads on any change in the files' folders (watching the folder, not the file, survives
 * editors that replace files and Kubernetes ConfigMap symlink swaps).
 */
export class RuleBook {
  private book: Book;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> = Promise.resolve();
  /** The last refusal, for tests and diagnostics; cleared by a good reload. */
  lastError: string | undefined;

  private constructor(
    initial: Book,
    private readonly files: { rules: string; model: string },
    private readonly log: Logger,
  ) {
    this.book = initial;
  }

  static async open(files: { rules: string; model: string }, log: Logger): Promise<RuleBook> {
    return new RuleBook(await loadBook(files.rules, files.model), files, log);
  }

  current(): Book {
    return this.book;
  }

  /** Re-reads both files; resolves true when a new, valid book is in force. */
  reload(): Promise<boolean> {
    const run = this.reloading.then(async () => {
      try {
        const next = await loadBook(this.files.rules, this.files.model);
        const changed = next.rules.version !== this.book.rules.version || next.model.version !== this.book.model.version;
        this.book = next;
        this.lastError = undefined;
        if (changed) this.log.info({ rulesetVersion: next.rules.version, modelVersion: next.model.version }, 'risk rules reloaded');
        return changed;
      } catch (err) {
        this.lastError = (err as Error).message;
        this.log.error({ err: this.lastError, rulesetVersion: this.book.rules.version, modelVersion: this.book.model.version }, 'risk rules refused; keeping the last good version');
        return false;
      }
    });
    this.reloading = run.then(() => undefined);
    return run;
  }

  watch(debounceMs = 100): void {
    const folders = [...new Set([dirname(this.files.rules), dirname(this.files.model)])];
    for (const folder of folders) {
      const watcher = watch(folder, () => {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.reload(), debounceMs);
      });
      watcher.on('error', (err) => this.log.warn({ err: err.message, folder }, 'rule file watch failed; rules stay as they are'));
      this.watchers.push(watcher);
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
    await this.reloading;
  }
}
