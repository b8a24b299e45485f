// Golden files: rendered text checked in beside the tests, so any change to
// what lands on a host shows up as a reviewed diff. A test run only compares;
// rewriting them is its own command, `npm run golden:update`, which sets
// AYNA_GOLDEN_UPDATE=1 (scripts/test.sh unsets it, and fails if any golden
// file changed during the run).
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";

const dir = path.join(__dirname, "..", "unit", "golden");
const shown = path.join("test", "unit", "golden");
export const UPDATE_ENV = "AYNA_GOLDEN_UPDATE";

export function assertGolden(name: string, actual: string): void {
  const file = path.join(dir, name);
  const expected = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
  if (process.env[UPDATE_ENV] === "1") {
    if (expected !== actual) {
      fs.writeFileSync(file, actual);
      process.stderr.write(`golden: wrote ${path.join(shown, name)}; review it with git diff\n`);
    }
    return;
  }
  if (expected === undefined) {
    assert.fail(`golden file ${path.join(shown, name)} is missing; create it with npm run golden:update and review it`);
  }
  if (expected !== actual) {
    // Our own diff, in the message, so it reads the same under any reporter
    // (and comes once: assert.fail adds none of its own).
    assert.fail(
      `${name} differs from ${path.join(shown, name)} (- golden, + rendered now).\n` +
        `If the change is intended: npm run golden:update, then review git diff ${shown}\n` +
        lineDiff(expected, actual),
    );
  }
}

/** A unified-style diff of two texts by lines, with `context` lines around each change. */
export function lineDiff(a: string, b: string, context = 3): string {
  const x = lines(a);
  const y = lines(b);
  // Longest common subsequence table; golden files are a few hundred lines.
  const lcs: number[][] = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  // Each step remembers where it starts in both texts (1-based), for the hunk headers.
  const ops: { op: " " | "-" | "+"; line: string; at: [number, number] }[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    const at: [number, number] = [i + 1, j + 1];
    if (i < x.length && j < y.length && x[i] === y[j]) {
      ops.push({ op: " ", line: x[i]!, at });
      i++;
      j++;
    } else if (i < x.length && (j >= y.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      ops.push({ op: "-", line: x[i++]!, at });
    } else {
      ops.push({ op: "+", line: y[j++]!, at });
    }
  }
  const changed = ops.map((o) => o.op !== " ");
  const keep = ops.map((_, k) => changed.slice(Math.max(0, k - context), k + context + 1).includes(true));
  const out: string[] = [];
  ops.forEach((o, k) => {
    if (!keep[k]) return;
    if (k === 0 || !keep[k - 1]) out.push(`@@ golden line ${o.at[0]}, rendered line ${o.at[1]} @@`);
    out.push(`${o.op} ${o.line}`);
  });
  return out.join("\n");
}

/** Lines of a text; trailing blanks and a missing final newline are made visible. */
function lines(s: string): string[] {
  const l = s
    .split("\n")
    .map((line) => line.replace(/[ \t]+$/, (w) => w.replace(/ /g, "\u00b7").replace(/\t/g, "\u2192")));
  if (l[l.length - 1] === "") l.pop();
  else l[l.length - 1] += " (no newline at end of file)";
  return l;
}
