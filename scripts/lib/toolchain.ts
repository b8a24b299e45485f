// Where scripts/toolchain.sh put the pulumi CLI (same rule as scripts/lib.sh).
import * as fs from "node:fs";
import * as path from "node:path";

// The nearest folder up with Pulumi.yaml: this file runs from scripts/lib/ (ts-node)
// or from a compiled copy under dist/program/ (scripts/compiled.js).
function findRoot(dir: string): string {
  if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
  const up = path.dirname(dir);
  if (up === dir) throw new Error(`no Pulumi.yaml above ${__dirname}`);
  return findRoot(up);
}

export const repoRoot = findRoot(__dirname);

/** Where the CLI pinned in toolchain/go.mod lives under a cache directory, whether or not it is there. */
export function pulumiBinaryIn(cache: string): string {
  const gomod = fs.readFileSync(path.join(repoRoot, "toolchain", "go.mod"), "utf8");
  const version = /github\.com\/pulumi\/pulumi\/pkg\/v3 (v\S+)/.exec(gomod)?.[1];
  if (!version) throw new Error("toolchain/go.mod does not pin github.com/pulumi/pulumi/pkg/v3");
  return path.join(cache, "toolchain", `pulumi-${version}`, "pulumi");
}

export function pulumiBinary(): string {
  const bin = pulumiBinaryIn(process.env.AYNA_CACHE_DIR ?? "/var/cache/ayna-deploy");
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run scripts/toolchain.sh first`);
  return bin;
}
