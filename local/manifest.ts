// A per-file sha256 manifest of the app directory, with the same exclusions
// as its archive: what the deploy plan compares to count files added, changed
// and removed and to find new migrations. Reads only the directory.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { excluded } from "./archive";

/** tar's --exclude for a pattern without a slash: a whole path component, `*` any characters. */
function componentMatcher(patterns: string[]): (name: string) => boolean {
  const res = patterns.map((p) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`));
  return (name) => res.some((r) => r.test(name));
}

/** Relative path (`/`-separated) -> sha256 of each file shipped from `dir`; a symlink hashes its target path. */
export function fileManifest(dir: string, exclude: string[] = excluded): Record<string, string> {
  const skip = componentMatcher(exclude);
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (skip(e.name)) continue;
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      const full = path.join(dir, r);
      if (e.isDirectory()) walk(r);
      else if (e.isSymbolicLink())
        out[r] = createHash("sha256")
          .update(`symlink:${fs.readlinkSync(full)}`)
          .digest("hex");
      else if (e.isFile()) out[r] = createHash("sha256").update(fs.readFileSync(full)).digest("hex");
    }
  };
  walk("");
  return out;
}
