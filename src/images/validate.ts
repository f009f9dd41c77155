// Small runtime validators: each record validator in schema.ts reads like its
// type. A failure names the field path; the caller adds the file name.

export class ValidationError extends Error {}

type V<T> = (v: unknown, path: string) => T;

const fail = (path: string, what: string): never => {
  throw new ValidationError(`${path}: ${what}`);
};

export const num: V<number> = (v, p) => {
  if (typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v !== "number" || !Number.isSafeInteger(v)) return fail(p, `expected an integer, got ${typeof v}`);
  return v;
};

export const nonneg: V<number> = (v, p) => {
  const n = num(v, p);
  if (n < 0) fail(p, `expected a non-negative integer, got ${n}`);
  return n;
};

export const big: V<bigint> = (v, p) => {
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isSafeInteger(v)) return BigInt(v);
  return fail(p, `expected a 64-bit integer, got ${typeof v}`);
};

export const str: V<string> = (v, p) => (typeof v === "string" ? v : fail(p, `expected a string, got ${typeof v}`));

export const bool: V<boolean> = (v, p) => (typeof v === "boolean" ? v : fail(p, `expected a boolean, got ${typeof v}`));

export const bytes: V<Uint8Array> = (v, p) =>
  v instanceof Uint8Array ? new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)) : fail(p, "expected bytes");

export function arr<T>(item: V<T>, max = 1 << 24): V<T[]> {
  return (v, p) => {
    if (!Array.isArray(v)) return fail(p, "expected an array");
    if (v.length > max) return fail(p, `array of ${v.length} items exceeds ${max}`);
    return v.map((x, i) => item(x, `${p}[${i}]`));
  };
}

export function oneOf<T extends string>(...values: T[]): V<T> {
  return (v, p) => (typeof v === "string" && (values as string[]).includes(v) ? (v as T) : fail(p, `expected one of ${values.join("|")}`));
}

export function nullable<T>(item: V<T>): V<T | null> {
  return (v, p) => (v === null || v === undefined ? null : item(v, p));
}

export function optional<T>(item: V<T>): V<T | undefined> {
  return (v, p) => (v === undefined || v === null ? undefined : item(v, p));
}

type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** The record type of a shape: fields whose validator may yield undefined are optional. */
export type Shaped<S extends Record<string, V<unknown>>> = Simplify<
  { [K in keyof S as undefined extends ReturnType<S[K]> ? never : K]: ReturnType<S[K]> } & {
    [K in keyof S as undefined extends ReturnType<S[K]> ? K : never]?: Exclude<ReturnType<S[K]>, undefined>;
  }
>;

/** An object with exactly the listed fields validated; unknown fields are dropped. */
export function obj<S extends Record<string, V<unknown>>>(shape: S): V<Shaped<S>> {
  return (v, p) => {
    if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) return fail(p, "expected a record");
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, check] of Object.entries(shape)) {
      const val = check(src[k], `${p}.${k}`);
      if (val !== undefined) out[k] = val;
    }
    return out as Shaped<S>;
  };
}
