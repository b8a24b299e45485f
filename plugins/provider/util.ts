import { isDeepStrictEqual } from "node:util";
import { containsUnknown, reveal } from "./secrets";

export interface Failure {
  property: string;
  reason: string;
}

function at(obj: unknown, dotted: string): unknown {
  let cur: unknown = obj;
  for (const part of dotted.split(".")) {
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** The keys (dotted paths) whose plain values differ; an unknown new value counts as a change. */
export function changedKeys(olds: Record<string, unknown>, news: Record<string, unknown>, keys: string[]): string[] {
  return keys.filter((k) => {
    const n = at(news, k);
    if (containsUnknown(n)) return true;
    return !isDeepStrictEqual(reveal(at(olds, k)) ?? null, reveal(n) ?? null);
  });
}

export function requireString(obj: Record<string, unknown> | object, key: string): Failure[] {
  const v = (obj as Record<string, unknown>)[key];
  return typeof v === "string" && v !== "" ? [] : [{ property: key, reason: "required (a non-empty string)" }];
}
