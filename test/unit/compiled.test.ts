// scripts/compiled.js: the program and the operator commands run as
// JavaScript compiled ahead into dist/program/<hash of the sources>/.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { repoRoot } from "../support/pulumi";

const launcher = path.join(repoRoot, "scripts", "compiled.js");
// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain JavaScript module without types
const { compiledIn } = require(launcher) as { compiledIn: (root: string, entry: string) => string };

/** A small project: index.ts importing a component, and a shell template read beside the code. */
function project(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-compiled-"));
  fs.writeFileSync(path.join(root, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "commonjs" } }));
  fs.mkdirSync(path.join(root, "components"));
  fs.mkdirSync(path.join(root, "builders"));
  fs.writeFileSync(path.join(root, "components", "thing.ts"), 'export const thing: string = "one";\n');
  fs.writeFileSync(path.join(root, "builders", "tool.sh"), "echo tool\n");
  fs.writeFileSync(
    path.join(root, "index.ts"),
    [
      'import * as fs from "node:fs";',
      'import * as path from "node:path";',
      'import { thing } from "./components/thing";',
      "export const out = thing;",
      'export const tool = fs.readFileSync(path.join(__dirname, "builders", "tool.sh"), "utf8");',
      "",
    ].join("\n"),
  );
  return root;
}

const trees = (root: string) =>
  fs
    .readdirSync(path.join(root, "dist", "program"))
    .filter((d) => !d.includes(".tmp-"))
    .sort();

function run(root: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const code = `const m = require(require(${JSON.stringify(launcher)}).compiledIn(${JSON.stringify(root)}, "index.ts")); console.log(m.out)`;
    const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (c) => resolve({ code: c ?? -1, out }));
  });
}

/** Runs `script` with node in the repo (its node_modules); fails the test unless it exits 0. */
async function nodeScript(script: string): Promise<{ out: string; err: string }> {
  const child = spawn(process.execPath, ["-e", script], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 0, out + err);
  return { out, err };
}

describe("scripts/compiled.js: the program compiled ahead", () => {
  const roots: string[] = [];
  after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));
  const fresh = () => {
    const r = project();
    roots.push(r);
    return r;
  };

  it("runs the sources from a tree named by their hash, with the files read beside the code; a second run compiles nothing", () => {
    const root = fresh();
    const entry = compiledIn(root, "index.ts");
    assert.match(path.relative(root, entry), /^dist\/program\/[0-9a-f]{16}\/index\.js$/);
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the compiled program, loaded the way the language host does
    const m = require(entry) as { out: string; tool: string };
    assert.equal(m.out, "one");
    assert.equal(m.tool, "echo tool\n");
    const stamp = fs.statSync(entry).mtimeMs;
    assert.equal(compiledIn(root, "index.ts"), entry);
    assert.equal(fs.statSync(entry).mtimeMs, stamp, "not written again");
    assert.equal(trees(root).length, 1);
  });

  it("an edited source gives a new tree that runs the edit; at most three trees are kept", async () => {
    const root = fresh();
    const seen = new Set<string>();
    for (const v of ["two", "three", "four", "five"]) {
      fs.writeFileSync(path.join(root, "components", "thing.ts"), `export const thing: string = "${v}";\n`);
      const r = await run(root);
      assert.equal(r.code, 0, r.out);
      assert.equal(r.out.trim(), v);
      seen.add(compiledIn(root, "index.ts"));
    }
    assert.equal(seen.size, 4, "each edit compiled anew");
    assert.equal(trees(root).length, 3);
  });

  it("four programs started at once on fresh sources all run the same complete tree", async () => {
    const root = fresh();
    const results = await Promise.all([1, 2, 3, 4].map(() => run(root)));
    for (const r of results) assert.deepEqual(r, { code: 0, out: "one\n" });
    assert.equal(trees(root).length, 1);
  });

  it("a source that does not compile stops the run naming the file, and leaves no tree", async () => {
    const root = fresh();
    fs.writeFileSync(path.join(root, "components", "thing.ts"), "export const thing = (;\n");
    const r = await run(root);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /the program's sources do not compile/);
    assert.match(r.out, /components\/thing\.ts/);
    assert.deepEqual(fs.readdirSync(path.join(root, "dist", "program")), []);
  });

  it("@pulumi/pulumi loads without its Automation API and closure serializer, each loaded in full on first use", async function () {
    this.timeout(60_000);
    const script = [
      `const { deferSdkParts } = require(${JSON.stringify(launcher)});`,
      `console.log(deferSdkParts(${JSON.stringify(repoRoot)}).length);`,
      "const loaded = (part) => Object.keys(require.cache).filter((k) => k.includes(part) && require.cache[k].loaded).length;",
      "const parts = ['/@pulumi/pulumi/automation/localWorkspace', '/closure/createClosure', '/@npmcli/arborist/'];",
      'const pulumi = require("@pulumi/pulumi");',
      "console.log(typeof pulumi.ComponentResource, parts.map(loaded).join(' '));",
      "console.log(typeof pulumi.automation.LocalWorkspace.create, Object.keys(pulumi.automation).includes('Stack'));",
      "pulumi.runtime.serializeFunction(() => 42).then((f) => {",
      "  console.log(f.text.includes('42'), typeof pulumi.runtime.computeCodePaths, parts.slice(0, 2).every((p) => loaded(p) > 0));",
      "});",
    ].join("\n");
    const { out, err } = await nodeScript(script);
    assert.equal(out, "3\nfunction 0 0 0\nfunction true\ntrue function true\n", err);
  });

  it("the program's stack traces are V8's own after the run harness installed source-map-support: the SDK's frames name its .js files, unmapped", async function () {
    this.timeout(60_000);
    // As @pulumi/pulumi/cmd/run does, then as scripts/program.js does.
    const script = [
      'require("source-map-support/register");',
      'const pulumi = require("@pulumi/pulumi");',
      "const top = () => pulumi.Resource.callsites()[0].file;",
      "const mapped = top();",
      `const changed = require(${JSON.stringify(launcher)}).nativeStackTraces();`,
      "console.log(JSON.stringify([mapped, changed, top(), Error.prepareStackTrace === undefined]));",
    ].join("\n");
    const { out } = await nodeScript(script);
    const [mapped, changed, native, unset] = JSON.parse(out) as [string, boolean, string, boolean];
    // The premise: source-map-support was mapping the SDK's frames to .ts paths.
    assert.match(mapped, /\.ts$/);
    assert.equal(changed, true);
    assert.equal(native, path.join(repoRoot, "node_modules", "@pulumi", "pulumi", "resource.js"));
    assert.equal(unset, true);
    const program = fs.readFileSync(path.join(repoRoot, "scripts", "program.js"), "utf8");
    assert.match(program, /^nativeStackTraces\(\);$/m, "scripts/program.js calls it before the program loads");
  });

  it("the run harness's debugger session stops reporting scripts before the program loads: a function loaded after has no file for the closure serializer, one loaded before has; without the harness's session none is opened", async function () {
    this.timeout(60_000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-compiled-"));
    try {
      for (const m of ["before", "after"]) fs.writeFileSync(path.join(dir, `${m}.js`), "module.exports = () => 42;\n");
      const where = (m: string) =>
        `(await v8.getFunctionLocationAsync(require(${JSON.stringify(path.join(dir, m))}))).file`;
      const harness = [
        `const { stopScriptEvents } = require(${JSON.stringify(launcher)});`,
        "(async () => {",
        // As @pulumi/pulumi/cmd/run does before it loads the program.
        '  await require("@pulumi/pulumi/runtime/closure/v8Hooks").isInitializedAsync();',
        '  const v8 = require("@pulumi/pulumi/runtime/closure/v8");',
        `  const before = ${where("before")};`,
        `  const stopped = await stopScriptEvents(${JSON.stringify(repoRoot)});`,
        `  const after = ${where("after")};`,
        "  console.log(JSON.stringify([before, stopped, after]));",
        "})();",
      ];
      const plain = [
        `const { stopScriptEvents } = require(${JSON.stringify(launcher)});`,
        `stopScriptEvents(${JSON.stringify(repoRoot)}).then((stopped) =>`,
        "  console.log(JSON.stringify([stopped, Object.keys(require.cache).some((k) => k.endsWith('v8Hooks.js'))])),",
        ");",
      ];
      const runIt = async (lines: string[]) => JSON.parse((await nodeScript(lines.join("\n"))).out) as unknown;
      assert.deepEqual(await runIt(harness), [`file://${path.join(dir, "before")}.js`, true, ""]);
      assert.deepEqual(await runIt(plain), [false, false]);
      const program = fs.readFileSync(path.join(repoRoot, "scripts", "program.js"), "utf8");
      const stops = program.indexOf("await stopScriptEvents(__dirname);");
      assert.ok(stops > 0 && stops < program.indexOf('require(compiled("index.ts"))'), "program.js stops them first");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
