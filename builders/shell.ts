// The one shell-quoting helper, and the tiny combinators every command builder
// uses. A command is built as argv arrays and joined here; no value is ever
// spliced into a shell string by hand.

/** One argv word. */
export type Arg = string | number;

/** Quotes one word for POSIX sh. Safe words are left bare so commands stay readable. */
export function quote(word: Arg): string {
  const s = String(word);
  if (s === "") return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Joins argv into one shell command. */
export function argv(...words: Arg[]): string {
  return words.map(quote).join(" ");
}

/**
 * Wraps a compound command in `{ ...; }` so it composes as one unit: sh gives
 * `&&` and `||` equal precedence, and `;` would end the surrounding list.
 */
export function group(command: string): string {
  return /&&|\|\||;|\|/.test(command) && !/^\{ [\s\S]*; \}$/.test(command) ? `{ ${command}; }` : command;
}

/** `a && b && c`: stops at the first failure. */
export function and(...commands: string[]): string {
  return commands
    .filter((c) => c !== "")
    .map(group)
    .join(" && ");
}

/** `a; b`: runs each regardless. */
export function seq(...commands: string[]): string {
  return commands.filter((c) => c !== "").join("; ");
}

/** `a || b`. */
export function or(...commands: string[]): string {
  return commands
    .filter((c) => c !== "")
    .map(group)
    .join(" || ");
}

/** Wraps a composed command so it runs under `sh -c` (optionally through sudo). */
export function shell(command: string, opts: { sudo?: boolean } = {}): string {
  const words: Arg[] = opts.sudo ? ["sudo", "-n", "sh", "-c", command] : ["sh", "-c", command];
  return argv(...words);
}

/** Octal file mode as four digits ("0600"), rejecting anything else. */
export function fileMode(mode: string | number): string {
  const s = typeof mode === "number" ? mode.toString(8).padStart(4, "0") : mode;
  if (!/^0?[0-7]{3}$/.test(s)) throw new Error(`invalid file mode ${JSON.stringify(mode)}: use octal such as "0644"`);
  return s.length === 3 ? `0${s}` : s;
}
