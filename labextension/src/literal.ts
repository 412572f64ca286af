/**
 * Python literals -> JSON values, for the Run-as-job form: a parameter is typed the way it would
 * be written in the notebook's parameters cell (`0.5`, `'iris'`, `[1, 2]`, `True`, `None`).
 * Papermill keeps the JSON types of the submitted values.
 */

/** A Python literal that could not be read. */
export class LiteralError extends Error {}

class Parser {
  private pos = 0;
  constructor(private readonly text: string) {}

  parse(): unknown {
    this.space();
    const value = this.value();
    this.space();
    if (this.pos < this.text.length) {
      this.fail(`unexpected ${JSON.stringify(this.text.slice(this.pos, this.pos + 10))}`);
    }
    return value;
  }

  private fail(message: string): never {
    throw new LiteralError(message);
  }

  private space(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) {
      this.pos++;
    }
  }

  private peek(): string {
    return this.text[this.pos] ?? '';
  }

  private value(): unknown {
    const c = this.peek();
    if (c === '[' || c === '(') {
      return this.sequence(c === '[' ? ']' : ')');
    }
    if (c === '{') {
      return this.mapping();
    }
    if (c === '"' || c === "'") {
      return this.string();
    }
    if (/[rRbBuUfF]/.test(c) && /["']/.test(this.text[this.pos + 1] ?? '')) {
      const prefix = c.toLowerCase();
      this.pos++;
      return this.string(prefix === 'r');
    }
    if (/[-+0-9.]/.test(c)) {
      return this.number();
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.pos));
    if (word) {
      const w = word[0];
      const known: Record<string, unknown> = {
        True: true,
        False: false,
        None: null
      };
      if (w in known) {
        this.pos += w.length;
        return known[w];
      }
      this.fail(`${w} is not a literal (quote strings: '${w}')`);
    }
    this.fail(c ? `unexpected ${JSON.stringify(c)}` : 'a value is missing');
  }

  private sequence(close: string): unknown[] {
    this.pos++;
    const items: unknown[] = [];
    this.space();
    while (this.peek() !== close) {
      if (!this.peek()) {
        this.fail(`missing ${close}`);
      }
      items.push(this.value());
      this.space();
      if (this.peek() === ',') {
        this.pos++;
        this.space();
      } else if (!this.peek()) {
        this.fail(`missing ${close}`);
      } else if (this.peek() !== close) {
        this.fail(`expected , or ${close}`);
      }
    }
    this.pos++;
    return items;
  }

  private mapping(): Record<string, unknown> {
    this.pos++;
    const out: Record<string, unknown> = {};
    this.space();
    while (this.peek() !== '}') {
      if (!this.peek()) {
        this.fail('missing }');
      }
      const key = this.value();
      if (typeof key !== 'string' && typeof key !== 'number') {
        this.fail('dictionary keys must be strings or numbers');
      }
      this.space();
      if (this.peek() !== ':') {
        this.fail('expected :');
      }
      this.pos++;
      this.space();
      out[String(key)] = this.value();
      this.space();
      if (this.peek() === ',') {
        this.pos++;
        this.space();
      } else if (!this.peek()) {
        this.fail('missing }');
      } else if (this.peek() !== '}') {
        this.fail('expected , or }');
      }
    }
    this.pos++;
    return out;
  }

  private number(): number {
    const m = /^[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?/.exec(
      this.text.slice(this.pos)
    );
    if (!m) {
      this.fail('not a number');
    }
    this.pos += m[0].length;
    const n = Number(m[0].replace(/_/g, ''));
    if (Number.isNaN(n)) {
      this.fail(`not a number: ${m[0]}`);
    }
    return n;
  }

  private string(raw = false): string {
    const quote = this.peek();
    const triple = this.text.startsWith(quote.repeat(3), this.pos);
    const end = triple ? quote.repeat(3) : quote;
    this.pos += end.length;
    let out = '';
    for (;;) {
      if (this.pos >= this.text.length) {
        this.fail('unterminated string');
      }
      if (this.text.startsWith(end, this.pos)) {
        this.pos += end.length;
        return out;
      }
      const c = this.text[this.pos++];
      if (c === '\\' && !raw) {
        const e = this.text[this.pos++] ?? '';
        const simple: Record<string, string> = {
          n: '\n',
          t: '\t',
          r: '\r',
          '0': '\0',
          '\\': '\\',
          "'": "'",
          '"': '"',
          '\n': ''
        };
        if (e in simple) {
          out += simple[e];
        } else if (e === 'u' || e === 'x') {
          const len = e === 'u' ? 4 : 2;
          const hex = this.text.slice(this.pos, this.pos + len);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) {
            this.fail(`bad \\${e} escape`);
          }
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += len;
        } else {
          out += '\\' + e;
        }
      } else {
        if (c === '\n' && !triple) {
          this.fail('unterminated string');
        }
        out += c;
      }
    }
  }
}

/** Read a Python literal (numbers, strings, True/False/None, lists, tuples, dicts). */
export function parsePythonLiteral(text: string): unknown {
  return new Parser(text).parse();
}
