/**
 * TypeBox, loaded when a schema is first needed, not when the model is. Building the schemas at
 * module load cost every process the library (~370 modules, ~680 with the compiler: most of a
 * query's start-up), though replay and queries never validate: only the compiled check of observed
 * and imported events (import, ingest, follow) and the published document (`schema`) use them.
 *
 * `Type` here has TypeBox's builder API but records each call as a deferred schema; `resolve`
 * turns a deferred schema into the real one (built once, with the real `Type`), and `compile`
 * compiles one. The library itself is loaded synchronously on first use (require of an ES module,
 * Node >= 20.19): module loading, not I/O, so the model stays pure.
 */
import { createRequire } from 'node:module';
import type TypeBox from 'typebox';
import type { TSchema } from 'typebox';
import type CompileFn from 'typebox/compile';

type Builder = typeof TypeBox;

const load = createRequire(import.meta.url);
let realType: Builder | undefined;
let realCompile: typeof CompileFn | undefined;
const library = (): Builder => (realType ??= (load('typebox') as { default: Builder }).default);

/**
 * Loads the library now, asynchronously: for hosts whose module system cannot require an ES
 * module (Jest before Node 24.9); afterwards schemas build without the synchronous load.
 */
export const loadSchemaLibrary = async (): Promise<void> => {
  realType ??= (await import('typebox')).default;
  realCompile ??= (await import('typebox/compile')).default;
};

/** A schema not built yet: the builder call that makes it. */
class Deferred {
  built: TSchema | undefined;
  constructor(
    readonly op: string,
    readonly args: readonly unknown[],
  ) {}
}

/** TypeBox's builder, deferred: every `Type.X(…)` returns a schema that `resolve` builds. */
export const Type: Builder = new Proxy({} as Builder, {
  get: (_target, op) => (typeof op === 'string' ? (...args: unknown[]) => new Deferred(op, args) : undefined),
});

/** `json` plus keywords (a spread would drop TypeBox's hidden `~refine` checks). */
export const annotate = (json: TSchema, keywords: Record<string, unknown>): TSchema => new Deferred('~annotate', [json, keywords]) as unknown as TSchema;

const build = (d: Deferred): TSchema => {
  if (d.built !== undefined) return d.built;
  const args = d.args.map(resolve);
  if (d.op === '~annotate') {
    const json = args[0] as TSchema;
    d.built = Object.assign(Object.create(Object.getPrototypeOf(json) as object | null, Object.getOwnPropertyDescriptors(json)) as TSchema, args[1] as Record<string, unknown>);
  } else {
    const fn = (library() as unknown as Record<string, (...a: unknown[]) => TSchema>)[d.op];
    if (typeof fn !== 'function') throw new TypeError(`typebox has no builder ${d.op}`);
    d.built = fn(...args);
  }
  return d.built;
};

/** The real value of something holding deferred schemas (plain objects and arrays are rebuilt; real schemas, functions and primitives kept). */
export const resolve = <T>(value: T): T => {
  if (value instanceof Deferred) return build(value) as T;
  if (Array.isArray(value)) return value.map(resolve) as T;
  if (typeof value !== 'object' || value === null || '~kind' in value) return value;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)])) as T;
};

/** A compiled (JIT) check of a (deferred) schema. */
export const compile = (json: TSchema): ((value: unknown) => boolean) => {
  realCompile ??= (load('typebox/compile') as { default: typeof CompileFn }).default;
  const validator = realCompile(resolve(json));
  return (value) => validator.Check(value);
};
