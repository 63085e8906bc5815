import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { CodegenError, type Diagnostic } from '../errors.js';

/** A location in one of the loaded files: absolute path + JSON pointer (`''` for the root). */
export interface Loc {
  readonly file: string;
  readonly pointer: string;
}

interface LoadedFile {
  readonly path: string;
  readonly text: string;
  readonly json: unknown;
  readonly doc: ReturnType<typeof parseDocument>;
  readonly lines: LineCounter;
}

export function locKey(loc: Loc): string {
  return `${loc.file}#${loc.pointer}`;
}

export function escapeToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function unescapeToken(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function child(loc: Loc, ...tokens: (string | number)[]): Loc {
  return { file: loc.file, pointer: loc.pointer + tokens.map((t) => `/${escapeToken(String(t))}`).join('') };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The source files of one AsyncAPI document, loaded with our own YAML reader so that every `$ref`
 * can be followed to where it is defined (names come from there) and reported with file and line.
 * Only local and relative file references are followed; remote ones are an error (codegen is
 * offline and reproducible).
 */
export class Workspace {
  readonly root: string;
  readonly #files = new Map<string, LoadedFile>();
  readonly diagnostics: Diagnostic[] = [];

  constructor(rootPath: string) {
    this.root = resolve(rootPath);
    this.#load(this.root, undefined);
    this.#scan();
  }

  /** Every loaded file, the root first, then sorted by path. */
  get files(): string[] {
    const rest = [...this.#files.keys()].filter((f) => f !== this.root).sort();
    return [this.root, ...rest];
  }

  rootJson(): unknown {
    return this.#files.get(this.root)?.json;
  }

  json(file: string): unknown {
    return this.#files.get(file)?.json;
  }

  /** sha256 of the sources: of the root file alone, or of every file's path and hash when there are several. */
  sha256(): string {
    const files = this.files;
    const hashOf = (f: string): string =>
      createHash('sha256')
        .update(this.#files.get(f)?.text ?? '')
        .digest('hex');
    if (files.length === 1) return hashOf(this.root);
    const hash = createHash('sha256');
    for (const f of files) hash.update(`${relative(dirname(this.root), f).split('\\').join('/')}\0${hashOf(f)}\n`);
    return hash.digest('hex');
  }

  display(file: string): string {
    return relative(process.cwd(), file) || file;
  }

  #load(path: string, from: { loc: Loc; ref: string } | undefined): boolean {
    if (this.#files.has(path)) return true;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (cause) {
      if (from) {
        this.#report(
          from.loc,
          'invalid-ref',
          `$ref "${from.ref}" points to ${this.display(path)}, which cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`,
        );
        return false;
      }
      throw new CodegenError(`cannot read ${path}: ${(cause as Error).message}`, [], { cause });
    }
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
    const file: LoadedFile = { path, text, json: undefined, doc, lines };
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        const pos = lines.linePos(error.pos[0]);
        this.diagnostics.push({
          file: this.display(path),
          line: pos.line,
          column: pos.col,
          severity: 'error',
          code: 'yaml',
          message: `invalid YAML/JSON: ${error.message.split('\n')[0]}`,
        });
      }
      this.#files.set(path, file);
      return false;
    }
    this.#files.set(path, { ...file, json: doc.toJS({ maxAliasCount: 1000 }) });
    return true;
  }

  /** Loads every file reachable through relative `$ref`s and checks that each reference resolves. */
  #scan(): void {
    const queue = [this.root];
    const seen = new Set<string>();
    while (queue.length > 0) {
      const file = queue.shift() as string;
      if (seen.has(file)) continue;
      seen.add(file);
      const json = this.#files.get(file)?.json;
      if (json === undefined) continue;
      const visit = (value: unknown, loc: Loc): void => {
        if (Array.isArray(value)) {
          for (const [i, item] of value.entries()) visit(item, child(loc, i));
          return;
        }
        if (!isRecord(value)) return;
        const ref = value.$ref;
        if (typeof ref === 'string') {
          const target = this.#refTarget(loc, ref);
          if (target) {
            if (this.#load(target.file, { loc, ref })) {
              if (!seen.has(target.file)) queue.push(target.file);
              if (this.#get(target) === undefined) {
                this.#report(
                  loc,
                  'invalid-ref',
                  `$ref "${ref}" does not resolve: ${this.display(target.file)} has nothing at "${target.pointer || '/'}"`,
                );
              }
            }
          }
        }
        for (const [key, item] of Object.entries(value)) if (key !== '$ref') visit(item, child(loc, key));
      };
      visit(json, { file, pointer: '' });
    }
  }

  #refTarget(loc: Loc, ref: string): Loc | undefined {
    if (/^[a-z][a-z0-9+.-]*:/i.test(ref) && !ref.startsWith('file:')) {
      this.#report(
        loc,
        'remote-ref',
        `$ref "${ref}" is remote and cannot be resolved offline — download the file next to the document and use a relative $ref`,
      );
      return undefined;
    }
    const hash = ref.indexOf('#');
    const path = hash === -1 ? ref : ref.slice(0, hash);
    const pointer = hash === -1 ? '' : decodeURIComponent(ref.slice(hash + 1));
    if (pointer !== '' && !pointer.startsWith('/')) {
      this.#report(
        loc,
        'invalid-ref',
        `$ref "${ref}" uses a plain-name fragment; only JSON pointers (#/...) are supported`,
      );
      return undefined;
    }
    const file =
      path === ''
        ? loc.file
        : path.startsWith('file:')
          ? new URL(path).pathname
          : resolve(dirname(loc.file), decodeURIComponent(path));
    return { file, pointer };
  }

  #report(loc: Loc, code: string, message: string): void {
    const pos = this.position(loc);
    this.diagnostics.push({
      file: this.display(loc.file),
      ...pos,
      pointer: loc.pointer,
      severity: 'error',
      code,
      message,
    });
  }

  /** 1-based line and column of a location, when the file was parsed. */
  position(loc: Loc): { line?: number; column?: number } {
    const file = this.#files.get(loc.file);
    if (!file) return {};
    const path = loc.pointer === '' ? [] : loc.pointer.slice(1).split('/').map(unescapeToken);
    let node: unknown = file.doc.contents;
    for (const token of path) {
      if (isMap(node))
        node = node.items.find(
          (pair) => String((pair.key as Node & { value?: unknown })?.value ?? pair.key) === token,
        )?.value;
      else if (isSeq(node)) node = node.items[Number(token)];
      else return {};
    }
    const range = (node as Node | undefined)?.range;
    if (!range) return {};
    const pos = file.lines.linePos(range[0]);
    return { line: pos.line, column: pos.col };
  }

  /** The raw value at a location, without following `$ref`s on the way. */
  #get(loc: Loc): unknown {
    let value = this.#files.get(loc.file)?.json;
    if (loc.pointer === '') return value;
    for (const raw of loc.pointer.slice(1).split('/')) {
      const token = unescapeToken(raw);
      if (Array.isArray(value)) value = value[Number(token)];
      else if (isRecord(value)) value = Object.hasOwn(value, token) ? value[token] : undefined;
      else return undefined;
    }
    return value;
  }

  /**
   * Follows `$ref`s from a location until a value that is not a reference; walks through references
   * met on the way. Returns the final location (where the value is defined) and the value.
   */
  resolve(loc: Loc): { loc: Loc; value: unknown } {
    let current = loc;
    for (let hops = 0; hops < 100; hops++) {
      const value = this.#walk(current);
      if (isRecord(value.value) && typeof value.value.$ref === 'string') {
        const target = this.#refTarget(value.loc, value.value.$ref);
        if (!target) return { loc: value.loc, value: undefined };
        current = target;
        continue;
      }
      return value;
    }
    throw new CodegenError(`$ref cycle at ${locKey(loc)}`, []);
  }

  /** Resolves a `$ref` string found at `loc` (the object holding it). */
  refTarget(loc: Loc, ref: string): Loc | undefined {
    return this.#refTarget(loc, ref);
  }

  #walk(loc: Loc): { loc: Loc; value: unknown } {
    let current: Loc = { file: loc.file, pointer: '' };
    let value = this.#files.get(loc.file)?.json;
    if (loc.pointer === '') return { loc: current, value };
    for (const raw of loc.pointer.slice(1).split('/')) {
      if (isRecord(value) && typeof value.$ref === 'string') {
        const resolved = this.resolve(current);
        current = resolved.loc;
        value = resolved.value;
      }
      const token = unescapeToken(raw);
      if (Array.isArray(value)) value = value[Number(token)];
      else if (isRecord(value)) value = Object.hasOwn(value, token) ? value[token] : undefined;
      else value = undefined;
      current = child(current, token);
    }
    return { loc: current, value };
  }
}
