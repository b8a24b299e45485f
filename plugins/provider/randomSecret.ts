// ayna:random:Secret — a random value made once and kept (stable across updates),
// replaced only when its length, alphabet or keepers change. The value is only
// ever handed back wrapped as a secret.
import { randomInt } from "node:crypto";
import { wrapSecret } from "./secrets";
import { DiffResult, Failure, propertyDiff } from "./util";

export interface SecretInputs {
  /** @default 50 */
  length?: number;
  /** "alnum" (letters and digits) or "urlsafe" (adds - and _). @default "alnum" */
  alphabet?: "alnum" | "urlsafe";
  /** Any change makes a new value. */
  keepers?: Record<string, unknown>;
}

const alphabets = {
  alnum: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
  urlsafe: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

export function checkSecret(news: Record<string, unknown>): Failure[] {
  const n = news as SecretInputs;
  const failures: Failure[] = [];
  if (n.length !== undefined && !(Number.isInteger(n.length) && n.length >= 16 && n.length <= 4096)) {
    failures.push({ property: "length", reason: "must be an integer from 16 to 4096" });
  }
  if (n.alphabet !== undefined && !(n.alphabet in alphabets)) {
    failures.push({ property: "alphabet", reason: 'must be "alnum" or "urlsafe"' });
  }
  return failures;
}

export function diffSecret(olds: Record<string, unknown>, news: Record<string, unknown>): DiffResult {
  const keys = ["length", "alphabet", "keepers"];
  return propertyDiff(olds, news, keys, keys);
}

export function generate(length: number, alphabet: keyof typeof alphabets): string {
  const chars = alphabets[alphabet];
  let out = "";
  for (let i = 0; i < length; i++) out += chars[randomInt(chars.length)];
  return out;
}

export function createSecret(news: Record<string, unknown>): { id: string; outs: Record<string, unknown> } {
  const n = news as SecretInputs;
  const value = generate(n.length ?? 50, n.alphabet ?? "alnum");
  return {
    id: `secret-${generate(12, "alnum").toLowerCase()}`,
    outs: { ...news, value: wrapSecret(value) },
  };
}
