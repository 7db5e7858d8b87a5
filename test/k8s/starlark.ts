/**
 * Just enough of Starlark to read a Tiltfile's top-level calls: string, number and boolean
 * literals, lists, tuples, dicts, identifiers and nested calls with positional and keyword
 * arguments. Anything else (operators, comprehensions, `def`) is skipped at statement level, so
 * the checks see only the calls they ask about, with their real arguments.
 */

export type Value =
  | { type: 'string'; value: string }
  | { type: 'number'; value: number }
  | { type: 'ident'; name: string }
  | { type: 'list'; items: Value[] }
  | { type: 'dict'; entries: Array<[Value, Value]> }
  | Call;

export interface Call {
  type: 'call';
  name: string;
  args: Value[];
  kwargs: Record<string, Value>;
  /** 1-based line of the call, for messages. */
  line: number;
}

type Token =
  | { kind: 'string'; value: string; line: number }
  | { kind: 'number'; value: number; line: number }
  | { kind: 'ident'; value: string; line: number }
  | { kind: 'punct'; value: string; line: number }
  | { kind: 'newline'; line: number };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let depth = 0; // inside brackets, newlines are not statement ends
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '\n') {
      if (depth === 0) tokens.push({ kind: 'newline', line });
      line++;
      i++;
    } else if (ch === ' ' || ch === '\t' || ch === '\r') {
      i++;
    } else if (ch === '\\' && source[i + 1] === '\n') {
      i += 2;
      line++;
    } else if (ch === '#') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (ch === '"' || ch === "'") {
      const triple = source.startsWith(ch.repeat(3), i);
      const quote = triple ? ch.repeat(3) : ch;
      const start = line;
      i += quote.length;
      let value = '';
      while (i < source.length && !source.startsWith(quote, i)) {
        if (source[i] === '\\' && i + 1 < source.length) {
          const next = source[i + 1]!;
          value += next === 'n' ? '\n' : next === 't' ? '\t' : next;
          i += 2;
          continue;
        }
        if (source[i] === '\n') {
          if (!triple) throw new Error(`Tiltfile:${line}: unterminated string`);
          line++;
        }
        value += source[i];
        i++;
      }
      if (i >= source.length) throw new Error(`Tiltfile:${start}: unterminated string`);
      i += quote.length;
      tokens.push({ kind: 'string', value, line: start });
    } else if (/[0-9]/.test(ch)) {
      const match = /^[0-9][0-9_]*(\.[0-9]+)?/.exec(source.slice(i))!;
      tokens.push({ kind: 'number', value: Number(match[0].replace(/_/g, '')), line });
      i += match[0].length;
    } else if (/[A-Za-z_]/.test(ch)) {
      const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i))!;
      tokens.push({ kind: 'ident', value: match[0], line });
      i += match[0].length;
    } else {
      if ('([{'.includes(ch)) depth++;
      if (')]}'.includes(ch)) depth = Math.max(0, depth - 1);
      tokens.push({ kind: 'punct', value: ch, line });
      i++;
    }
  }
  tokens.push({ kind: 'newline', line });
  return tokens;
}

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  /** Every call that starts a statement (`name(...)` at the beginning of a logical line). */
  topLevelCalls(): Call[] {
    const calls: Call[] = [];
    while (this.pos < this.tokens.length) {
      const t = this.tokens[this.pos]!;
      const next = this.tokens[this.pos + 1];
      const startsStatement = this.pos === 0 || this.tokens[this.pos - 1]!.kind === 'newline';
      if (startsStatement && t.kind === 'ident' && next?.kind === 'punct' && next.value === '(') {
        try {
          calls.push(this.call());
          continue;
        } catch {
          // Not an expression this parser understands: skip the statement.
        }
      }
      this.skipStatement();
    }
    return calls;
  }

  private skipStatement(): void {
    while (this.pos < this.tokens.length && this.tokens[this.pos]!.kind !== 'newline') this.pos++;
    this.pos++;
  }

  private peek(): Token {
    return this.tokens[this.pos]!;
  }

  private isPunct(value: string): boolean {
    const t = this.peek();
    return t.kind === 'punct' && t.value === value;
  }

  private expectPunct(value: string): void {
    const t = this.peek();
    if (t.kind !== 'punct' || t.value !== value) {
      throw new Error(`Tiltfile:${t.line}: expected '${value}'`);
    }
    this.pos++;
  }

  private call(): Call {
    const nameToken = this.peek();
    if (nameToken.kind !== 'ident') throw new Error(`Tiltfile:${nameToken.line}: expected a name`);
    this.pos++;
    this.expectPunct('(');
    const call: Call = { type: 'call', name: nameToken.value, args: [], kwargs: {}, line: nameToken.line };
    while (!this.isPunct(')')) {
      const t = this.peek();
      const after = this.tokens[this.pos + 1];
      if (t.kind === 'ident' && after?.kind === 'punct' && after.value === '=') {
        this.pos += 2;
        call.kwargs[t.value] = this.value();
      } else {
        call.args.push(this.value());
      }
      if (!this.isPunct(')')) this.expectPunct(',');
    }
    this.expectPunct(')');
    return call;
  }

  private value(): Value {
    const t = this.peek();
    if (t.kind === 'string') {
      this.pos++;
      let value = t.value;
      // Adjacent literals concatenate, as in Python.
      while (this.peek().kind === 'string') value += (this.tokens[this.pos++] as { value: string }).value;
      return { type: 'string', value };
    }
    if (t.kind === 'number') {
      this.pos++;
      return { type: 'number', value: t.value };
    }
    if (t.kind === 'ident') {
      const after = this.tokens[this.pos + 1];
      if (after?.kind === 'punct' && after.value === '(') return this.call();
      this.pos++;
      return { type: 'ident', name: t.value };
    }
    if (t.kind === 'punct' && (t.value === '[' || t.value === '(')) {
      const close = t.value === '[' ? ']' : ')';
      this.pos++;
      const items: Value[] = [];
      while (!this.isPunct(close)) {
        items.push(this.value());
        if (!this.isPunct(close)) this.expectPunct(',');
      }
      this.pos++;
      return { type: 'list', items };
    }
    if (t.kind === 'punct' && t.value === '{') {
      this.pos++;
      const entries: Array<[Value, Value]> = [];
      while (!this.isPunct('}')) {
        const key = this.value();
        this.expectPunct(':');
        entries.push([key, this.value()]);
        if (!this.isPunct('}')) this.expectPunct(',');
      }
      this.pos++;
      return { type: 'dict', entries };
    }
    throw new Error(`Tiltfile:${t.line}: unsupported expression`);
  }
}

/** The calls that start a statement in `source`, with their parsed arguments. */
export function parseTopLevelCalls(source: string): Call[] {
  return new Parser(tokenize(source)).topLevelCalls();
}

/** A string literal's value, or undefined for anything else. */
export function asString(value: Value | undefined): string | undefined {
  return value?.type === 'string' ? value.value : undefined;
}

/** The string items of a list literal (non-strings are left out), or undefined if not a list. */
export function asStringList(value: Value | undefined): string[] | undefined {
  if (value?.type !== 'list') return undefined;
  return value.items.flatMap((item) => (item.type === 'string' ? [item.value] : []));
}

/** Every call named `name` anywhere inside `value` (depth-first). */
export function nestedCalls(value: Value | undefined, name: string): Call[] {
  if (value === undefined) return [];
  switch (value.type) {
    case 'call':
      return [
        ...(value.name === name ? [value] : []),
        ...value.args.flatMap((a) => nestedCalls(a, name)),
        ...Object.values(value.kwargs).flatMap((a) => nestedCalls(a, name)),
      ];
    case 'list':
      return value.items.flatMap((item) => nestedCalls(item, name));
    case 'dict':
      return value.entries.flatMap(([k, v]) => [...nestedCalls(k, name), ...nestedCalls(v, name)]);
    default:
      return [];
  }
}
