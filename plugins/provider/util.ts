import { isDeepStrictEqual } from "node:util";
import { containsUnknown, reveal } from "./secrets";

export type { Failure } from "./ssh";

export type DiffKind = "add" | "add-replace" | "delete" | "delete-replace" | "update" | "update-replace";

/** A diff with its per-property detail, so `preview --diff` shows only what changed and replaceOnChanges works. */
export interface DiffResult {
  changes: boolean;
  /** Top-level properties whose change replaces the resource. */
  replaces: string[];
  deleteBeforeReplace: boolean;
  /** Top-level properties that changed. */
  diffs: string[];
  detailedDiff: Record<string, DiffKind>;
}

function isAbsent(v: unknown): boolean {
  return v === undefined || v === null;
}

/** Whether a property changed; an unknown new value (preview) counts as changed. */
export function changed(o: unknown, n: unknown): boolean {
  if (containsUnknown(n)) return true;
  const a = reveal(o);
  const b = reveal(n);
  if (isAbsent(a) && isAbsent(b)) return false;
  return !isDeepStrictEqual(a, b);
}

/** The rest of a diff follows from its detail: what changed, and which of those changes replace. */
export function diffFrom(detailedDiff: Record<string, DiffKind>, deleteBeforeReplace = false): DiffResult {
  const diffs = Object.keys(detailedDiff);
  const replaces = diffs.filter((k) => detailedDiff[k]!.endsWith("-replace"));
  return {
    changes: diffs.length > 0,
    replaces,
    deleteBeforeReplace: replaces.length > 0 && deleteBeforeReplace,
    diffs,
    detailedDiff,
  };
}

/** Compares the listed top-level properties; those in `replaceKeys` replace the resource when they change. */
export function propertyDiff(
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
  keys: readonly string[],
  replaceKeys: readonly string[],
  deleteBeforeReplace = false,
): DiffResult {
  const detailedDiff: Record<string, DiffKind> = {};
  for (const k of keys) {
    if (!changed(olds[k], news[k])) continue;
    const base: "add" | "delete" | "update" = isAbsent(olds[k]) ? "add" : isAbsent(news[k]) ? "delete" : "update";
    detailedDiff[k] = replaceKeys.includes(k) ? `${base}-replace` : base;
  }
  return diffFrom(detailedDiff, deleteBeforeReplace);
}

/**
 * Whether the machine behind the provider is another one: both the stored and
 * the new identity are pinned keys, and they differ. Learning the key of a
 * host that was unpinned (or deployed before identities were kept) is not a
 * new machine, so nothing is replaced for it.
 */
export function newMachine(olds: Record<string, unknown>, news: Record<string, unknown>): boolean {
  const was = olds["hostIdentity"];
  const now = news["hostIdentity"];
  if (typeof was !== "string" || was === "unpinned" || containsUnknown(now)) return false;
  return typeof now === "string" && now !== was;
}

/** Sets the diff entry of `hostIdentity`: a replacement only for a new machine, else stored only. */
export function withIdentity(d: DiffResult, olds: Record<string, unknown>, news: Record<string, unknown>): DiffResult {
  const { hostIdentity: _stale, ...detailed } = d.detailedDiff;
  void _stale;
  const another = newMachine(olds, news);
  if (another) detailed["hostIdentity"] = "update-replace";
  else if (changed(olds["hostIdentity"], news["hostIdentity"]))
    detailed["hostIdentity"] = isAbsent(olds["hostIdentity"]) ? "add" : "update";
  // A new machine gets nothing before the old machine's state is dropped.
  return diffFrom(detailed, another);
}

/** The top-level keys among `keys` that changed. */
export function changedKeys(olds: Record<string, unknown>, news: Record<string, unknown>, keys: string[]): string[] {
  return keys.filter((k) => changed(olds[k], news[k]));
}

export function requireString(
  obj: Record<string, unknown> | object,
  key: string,
): { property: string; reason: string }[] {
  const v = (obj as Record<string, unknown>)[key];
  return typeof v === "string" && v !== "" ? [] : [{ property: key, reason: "required (a non-empty string)" }];
}

/**
 * Drops undefined values at any depth: the engine's Struct encoding has no
 * `undefined`, and one in an output used to fail a whole update with
 * "Unexpected struct type".
 */
export function defined<T>(v: T): T {
  if (Array.isArray(v)) return v.filter((x) => x !== undefined).map(defined) as T;
  if (typeof v === "object" && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = defined(x);
    return out as T;
  }
  return v;
}
