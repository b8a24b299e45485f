// Runs this project's TypeScript as JavaScript compiled ahead, so neither the
// program (scripts/program.js, Pulumi.yaml's `main`) nor the operator commands
// (`node scripts/compiled.js scripts/rollback.ts ...`) pay for ts-node.
//
// The compiled tree is content-addressed: dist/program/<hash of the sources>/.
// A checkout whose sources match an existing tree runs it at once (one hash of
// about fifty files); after an edit the first run transpiles the sources into
// a private directory and renames it into place, so programs started side by
// side never see a half-written tree and need no lock. Types are the test
// command's to check (tsc --noEmit), as with ts-node's transpileOnly before.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const repoRoot = path.resolve(__dirname, "..");
// Everything index.ts can reach, and the files read beside the code.
const dirs = ["components", "stacks", "builders", "local", "sdk", "standard", "scripts"];
const assets = [".sh"];
const keep = 3; // compiled trees kept: a program still running may use an older one

function sources(root) {
  const files = ["index.ts", "tsconfig.json"];
  const walk = (dir) => {
    if (!fs.existsSync(path.join(root, dir))) return;
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if ((e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) || assets.some((a) => e.name.endsWith(a))) {
        files.push(rel);
      }
    }
  };
  dirs.forEach(walk);
  return files.sort();
}

function hashOf(root, files) {
  const h = crypto.createHash("sha256");
  for (const f of files)
    h.update(`${f}\0`)
      .update(fs.readFileSync(path.join(root, f)))
      .update("\0");
  return h.digest("hex").slice(0, 16);
}

function compile(root, files, dest) {
  const ts = require("typescript");
  const tsconfig = ts.readConfigFile(path.join(root, "tsconfig.json"), ts.sys.readFile).config;
  const { options } = ts.convertCompilerOptionsFromJson(tsconfig.compilerOptions, root);
  const compilerOptions = { ...options, sourceMap: false };
  const tmp = `${dest}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  for (const f of files) {
    if (f === "tsconfig.json") continue;
    const to = path.join(tmp, f.replace(/\.ts$/, ".js"));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    const src = fs.readFileSync(path.join(root, f), "utf8");
    if (!f.endsWith(".ts")) {
      fs.writeFileSync(to, src);
      continue;
    }
    const r = ts.transpileModule(src, { compilerOptions, fileName: path.join(root, f), reportDiagnostics: true });
    if (r.diagnostics && r.diagnostics.length > 0) {
      fs.rmSync(tmp, { recursive: true, force: true });
      const text = ts.formatDiagnostics(r.diagnostics, {
        getCanonicalFileName: (x) => x,
        getCurrentDirectory: () => root,
        getNewLine: () => "\n",
      });
      throw new Error(`the program's sources do not compile:\n${text}`);
    }
    fs.writeFileSync(to, r.outputText);
  }
  try {
    fs.renameSync(tmp, dest);
  } catch (err) {
    // Another program compiled the same sources first: theirs is identical.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(path.join(dest, "index.js"))) throw err;
  }
}

function prune(out, current) {
  const trees = fs
    .readdirSync(out, { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== current && !e.name.includes(".tmp-"))
    .map((e) => ({ name: e.name, mtime: fs.statSync(path.join(out, e.name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const t of trees.slice(keep - 1)) fs.rmSync(path.join(out, t.name), { recursive: true, force: true });
}

/**
 * The compiled form of `entry` (a .ts path relative to `root`), compiling the
 * sources into ROOT/dist/program/<hash>/ first when no tree holds them yet.
 */
function compiledIn(root, entry) {
  const out = path.join(root, "dist", "program");
  const files = sources(root);
  const hash = hashOf(root, files);
  const dest = path.join(out, hash);
  if (!fs.existsSync(path.join(dest, "index.js"))) {
    fs.mkdirSync(out, { recursive: true });
    compile(root, files, dest);
    prune(out, hash);
  }
  return path.join(dest, entry.replace(/\.ts$/, ".js"));
}

const compiled = (entry) => compiledIn(repoRoot, entry);

/**
 * Parts of @pulumi/pulumi its index loads at once although a program like
 * this one never calls them: the Automation API (about 0.25 s) and the
 * closure serializer with its code-path finder (about 0.3 s, for dynamic
 * providers). Together they were half of this program's start. Each gets a
 * stand-in in Node's module cache that loads the real module on first use;
 * `functions` are the names the SDK reads at load time, handed out as
 * functions that call the real one.
 */
const deferred = [
  { id: "@pulumi/pulumi/automation", functions: [] },
  { id: "@pulumi/pulumi/runtime/closure/serializeClosure", functions: ["serializeFunctionAsync", "serializeFunction"] },
  { id: "@pulumi/pulumi/runtime/closure/codePaths", functions: ["computeCodePaths"] },
];

function deferModule(file, functions) {
  const Module = require("node:module");
  let real;
  const load = () => {
    if (!real) {
      const m = new Module(file, module);
      m.filename = file;
      m.paths = Module._nodeModulePaths(path.dirname(file));
      m.load(file);
      real = m.exports;
    }
    return real;
  };
  const callers = new Map(
    functions.map((name) => [
      name,
      function (...args) {
        return load()[name].apply(this, args);
      },
    ]),
  );
  const stub = new Module(file, module);
  stub.filename = file;
  stub.loaded = true;
  stub.exports = new Proxy(
    {},
    {
      // The SDK's `__importStar` takes an ES module as it is, without reading anything else.
      get: (_, key) => (key === "__esModule" ? true : callers.has(key) ? callers.get(key) : load()[key]),
      has: (_, key) => key in load(),
      ownKeys: () => Reflect.ownKeys(load()),
      getOwnPropertyDescriptor: (_, key) => {
        const d = Object.getOwnPropertyDescriptor(load(), key);
        return d && { ...d, configurable: true };
      },
    },
  );
  require.cache[file] = stub;
}

/**
 * Puts back V8's own stack formatting, which the SDK's run harness replaces
 * with source-map-support before the program loads. The SDK reads
 * `new Error().stack` for every promise it makes (debuggablePromise) and for
 * every resource's source position, and each read mapped the SDK's frames
 * through the source maps it ships: a quarter of a second of a no-op `up`
 * (24 resources). Nothing is lost: this code is compiled without source maps,
 * and the SDK's maps point at .ts files it does not ship. Returns whether a
 * formatter was replaced.
 */
function nativeStackTraces() {
  if (Error.prepareStackTrace === undefined) return false;
  Error.prepareStackTrace = undefined;
  return true;
}

/**
 * Stops the debugger session the SDK's run harness opens before the program
 * loads (runtime/closure/v8Hooks): with it on, V8 sends an event for every
 * script compiled afterwards, a few hundred modules in this program, about a
 * tenth of a second of a no-op `up`. The session only tells the closure
 * serializer where a function was defined; this program serializes none (no
 * dynamic providers, no function callbacks). Resolves once it is off; a
 * harness without the session (another run mode) is left as it is.
 */
async function stopScriptEvents(fromDir) {
  let file;
  try {
    file = require.resolve("@pulumi/pulumi/runtime/closure/v8Hooks", { paths: [fromDir] });
  } catch {
    return false;
  }
  // Not loaded: nothing opened a session, and asking for one would open it.
  if (!require.cache[file]) return false;
  const session = await require.cache[file].exports.getSessionAsync();
  await new Promise((resolve, reject) => session.post("Debugger.disable", (err) => (err ? reject(err) : resolve())));
  return true;
}

/** Installs the stand-ins for the SDK that `fromDir` resolves; returns the modules deferred. */
function deferSdkParts(fromDir) {
  const done = [];
  for (const { id, functions } of deferred) {
    let file;
    try {
      file = require.resolve(id, { paths: [fromDir] });
    } catch {
      continue;
    }
    if (require.cache[file]) continue;
    deferModule(file, functions);
    done.push(id);
  }
  return done;
}

module.exports = { compiled, compiledIn, deferSdkParts, nativeStackTraces, stopScriptEvents };

// As a command: node scripts/compiled.js ENTRY.ts [ARGS...] runs ENTRY with ARGS.
if (require.main === module) {
  const entry = process.argv[2];
  if (!entry || !entry.endsWith(".ts")) {
    process.stderr.write("usage: node scripts/compiled.js FILE.ts [ARGS...]\n");
    process.exit(2);
  }
  const target = compiled(path.relative(repoRoot, path.resolve(entry)));
  // As node's own main module, so the entry's `require.main === module` holds.
  process.argv.splice(1, 2, target);
  require("node:module").runMain();
}
