// Validates raw stack config against the schema: every problem is reported with
// the path of the key and what to do, and no value is echoed (it may be secret).
import * as pulumi from "@pulumi/pulumi";
import { Field } from "./schema";

/** A RunError, so `pulumi` shows the message alone, without a stack trace. */
export class ConfigError extends pulumi.RunError {
  constructor(readonly problems: string[]) {
    super(`invalid stack configuration (nothing was changed):\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest known key, when it is close enough to be a likely typo. */
export function suggest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(key, k);
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

export function unknownKeyMessage(path: string, key: string, known: string[]): string {
  const hint = suggest(key, known);
  return hint
    ? `${path}: unknown key (did you mean "${hint}"?)`
    : `${path}: unknown key (known keys: ${known.join(", ")})`;
}

/** Validates `value` at `path`; returns the value with defaults filled in. */
export function validateField(path: string, field: Field, value: unknown, problems: string[]): unknown {
  if (value === undefined || value === null) {
    if (field.required) problems.push(`${path}: required. ${field.doc}`);
    // An absent object still gets its fields' defaults.
    if (field.kind === "object" && !field.required) return validateObject(path, field.fields, {}, problems);
    if (field.kind === "map" && !field.required) return {};
    return "default" in field ? field.default : undefined;
  }
  switch (field.kind) {
    case "string": {
      if (typeof value !== "string") {
        problems.push(`${path}: expected a string, got ${describe(value)}`);
        return undefined;
      }
      if (field.required && value.trim() === "") problems.push(`${path}: must not be empty. ${field.doc}`);
      else if (field.pattern && !field.pattern.test(value)) {
        problems.push(`${path}: invalid value; expected ${field.patternHint ?? field.pattern.source}`);
      }
      return value;
    }
    case "int": {
      const n = typeof value === "string" && /^-?\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== "number" || !Number.isInteger(n)) {
        problems.push(`${path}: expected a whole number, got ${describe(value)}`);
        return undefined;
      }
      if ((field.min !== undefined && n < field.min) || (field.max !== undefined && n > field.max)) {
        problems.push(`${path}: ${n} is out of range ${field.min ?? "-inf"}..${field.max ?? "inf"}`);
      }
      return n;
    }
    case "bool": {
      const b = value === "true" ? true : value === "false" ? false : value;
      if (typeof b !== "boolean") {
        problems.push(`${path}: expected true or false, got ${describe(value)}`);
        return undefined;
      }
      return b;
    }
    case "enum": {
      if (typeof value !== "string" || !field.values.includes(value)) {
        problems.push(`${path}: expected one of ${field.values.join(", ")}`);
        return undefined;
      }
      return value;
    }
    case "object": {
      if (typeof value !== "object" || Array.isArray(value)) {
        problems.push(`${path}: expected an object, got ${describe(value)}`);
        return undefined;
      }
      return validateObject(path, field.fields, value as Record<string, unknown>, problems);
    }
    case "map": {
      if (typeof value !== "object" || Array.isArray(value)) {
        problems.push(`${path}: expected a map of names to values, got ${describe(value)}`);
        return undefined;
      }
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (!field.keyPattern.test(k)) problems.push(`${path}.${k}: invalid name; expected ${field.keyHint}`);
        out[k] = validateField(`${path}.${k}`, field.values, v, problems);
      }
      return out;
    }
    case "array": {
      if (!Array.isArray(value)) {
        problems.push(`${path}: expected a list, got ${describe(value)}`);
        return undefined;
      }
      if (field.minItems !== undefined && value.length < field.minItems) {
        problems.push(`${path}: needs at least ${field.minItems} item(s). ${field.doc}`);
      }
      return value.map((item, i) => validateField(`${path}[${i}]`, field.items, item, problems));
    }
  }
}

export function validateObject(
  path: string,
  fields: Record<string, Field>,
  value: Record<string, unknown>,
  problems: string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const known = Object.keys(fields);
  for (const key of Object.keys(value)) {
    if (!(key in fields)) problems.push(unknownKeyMessage(`${path}.${key}`, key, known));
  }
  for (const [key, field] of Object.entries(fields)) {
    const v = validateField(`${path}.${key}`, field, value[key], problems);
    if (v !== undefined) out[key] = v;
  }
  return out;
}
