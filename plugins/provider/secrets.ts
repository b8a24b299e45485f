// Values from the engine arrive with secrets wrapped in a signature object.
// Providers reveal them only where they are used and hand the wrapped form back
// in outputs, so the engine keeps them encrypted in state.

const sigKey = "4dabf18193072939515e22adb298388d";
const secretSig = "1b47061264138c4ac30d75fd1eb44270";
/** The engine's marker for a value not known during preview. */
export const unknownValue = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

interface SecretWrapper {
  [sigKey]: string;
  value: unknown;
}

export function isSecret(v: unknown): v is SecretWrapper {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[sigKey] === secretSig;
}

export function wrapSecret(value: unknown): SecretWrapper {
  return { [sigKey]: secretSig, value };
}

/** The plain value, with every secret wrapper removed at any depth. */
export function reveal(v: unknown): unknown {
  if (isSecret(v)) return reveal(v.value);
  if (Array.isArray(v)) return v.map(reveal);
  if (typeof v === "object" && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = reveal(x);
    return out;
  }
  return v;
}

/** Shorter strings are not scrubbed: masking them would mask parts of ordinary words. */
export const shortestScrubbed = 4;

/** Every string that sits inside a secret, so it can be scrubbed from output. */
export function secretStrings(v: unknown, inside = false, acc: string[] = []): string[] {
  if (isSecret(v)) return secretStrings(v.value, true, acc);
  if (typeof v === "string") {
    if (inside) {
      acc.push(v);
      for (const line of v.split("\n")) if (line.trim().length >= shortestScrubbed) acc.push(line.trim());
    }
  } else if (Array.isArray(v)) {
    for (const x of v) secretStrings(x, inside, acc);
  } else if (typeof v === "object" && v !== null) {
    for (const x of Object.values(v)) secretStrings(x, inside, acc);
  }
  return acc;
}

/** Replaces each secret string (at least `shortestScrubbed` characters) in `text` with `[secret]`. */
export function scrub(text: string, secrets: string[]): string {
  const words = [...new Set(secrets.filter((s) => s.length >= shortestScrubbed))].sort((a, b) => b.length - a.length);
  let out = text;
  for (const w of words) out = out.split(w).join("[secret]");
  return out;
}

export function containsUnknown(v: unknown): boolean {
  if (v === unknownValue) return true;
  if (isSecret(v)) return containsUnknown(v.value);
  if (Array.isArray(v)) return v.some(containsUnknown);
  if (typeof v === "object" && v !== null) return Object.values(v).some(containsUnknown);
  return false;
}
