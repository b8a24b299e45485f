// The deploying machine's archive cache: private to the deploying user.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";
import { Archive, archiveDir, archiveEntries, buildArchive, fileDigest } from "../../local/archive";

describe("local archive cache", () => {
  let tmp: string;
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-archive-test-"))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("lives under the user's XDG cache, mode 0700, not a fixed path in /tmp", () => {
    const dir = archiveDir({ XDG_CACHE_HOME: tmp });
    assert.equal(dir, path.join(tmp, "ayna-deploy", "archives"));
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  });

  it("takes a group- or world-readable cache back to 0700", () => {
    const dir = path.join(tmp, "c");
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    archiveDir({ AYNA_ARCHIVE_DIR: dir });
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  });

  // The test command runs as root (README), which can give a directory away.
  it("refuses a cache directory another user owns, naming the fix", () => {
    const dir = path.join(tmp, "theirs");
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.chownSync(dir, 65534, 65534);
    assert.throws(
      () => archiveDir({ AYNA_ARCHIVE_DIR: dir }),
      /belongs to uid 65534, not to you \(0\); remove it or set AYNA_ARCHIVE_DIR/,
    );
  });

  it("refuses a symlink in place of the cache directory", () => {
    const real = path.join(tmp, "real");
    fs.mkdirSync(real, { mode: 0o700 });
    const link = path.join(tmp, "link");
    fs.symlinkSync(real, link);
    assert.throws(() => archiveDir({ AYNA_ARCHIVE_DIR: link }), /is not a directory/);
  });

  it("packs the same bytes twice to the same hash, inside the private cache", () => {
    const app = path.join(tmp, "app");
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, "a.py"), "print(1)\n");
    const prev = process.env["AYNA_ARCHIVE_DIR"];
    process.env["AYNA_ARCHIVE_DIR"] = path.join(tmp, "cache");
    try {
      const one = buildArchive(app);
      const two = buildArchive(app);
      assert.equal(one.sha256, two.sha256);
      assert.equal(path.dirname(one.path), path.join(tmp, "cache"));
      assert.equal(fs.statSync(one.path).mode & 0o077, 0);
    } finally {
      if (prev === undefined) delete process.env["AYNA_ARCHIVE_DIR"];
      else process.env["AYNA_ARCHIVE_DIR"] = prev;
    }
  });

  it("lists every shipped file (long names too) with a hash of its mode and content, for the deploy plan", () => {
    const app = path.join(tmp, "app");
    const deep = path.join(app, "a".repeat(60), "b".repeat(60));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(app, "a.py"), "print(1)\n");
    fs.writeFileSync(path.join(deep, "long.py"), "x = 2\n");
    fs.mkdirSync(path.join(app, "__pycache__"));
    fs.writeFileSync(path.join(app, "__pycache__", "a.pyc"), "junk");
    fs.symlinkSync("a.py", path.join(app, "link.py"));
    const prev = process.env["AYNA_ARCHIVE_DIR"];
    process.env["AYNA_ARCHIVE_DIR"] = path.join(tmp, "cache");
    try {
      const one = buildArchive(app);
      const longName = `${"a".repeat(60)}/${"b".repeat(60)}/long.py`;
      assert.deepEqual(Object.keys(one.files).sort(), ["a.py", longName, "link.py"]);
      fs.chmodSync(path.join(app, "a.py"), 0o755);
      const two = buildArchive(app);
      assert.notEqual(two.files["a.py"], one.files["a.py"], "a mode change changes the file's hash");
      assert.equal(two.files[longName], one.files[longName]);
      fs.writeFileSync(path.join(deep, "long.py"), "x = 3\n");
      assert.notEqual(buildArchive(app).files[longName], one.files[longName]);
    } finally {
      if (prev === undefined) delete process.env["AYNA_ARCHIVE_DIR"];
      else process.env["AYNA_ARCHIVE_DIR"] = prev;
    }
  });
  describe("remembered archives (a run whose files did not change packs nothing)", () => {
    let prev: string | undefined;
    let app: string;
    beforeEach(() => {
      prev = process.env["AYNA_ARCHIVE_DIR"];
      process.env["AYNA_ARCHIVE_DIR"] = path.join(tmp, "cache");
      app = path.join(tmp, "app");
      fs.mkdirSync(path.join(app, "pkg"), { recursive: true });
      fs.writeFileSync(path.join(app, "a.py"), "print(1)\n");
      fs.writeFileSync(path.join(app, "pkg", "b.py"), "x = 1\n");
    });
    afterEach(() => {
      if (prev === undefined) delete process.env["AYNA_ARCHIVE_DIR"];
      else process.env["AYNA_ARCHIVE_DIR"] = prev;
    });
    const settled = () => new Promise((r) => setTimeout(r, 80));
    // The archive file is dated 2000 after a build: a pack writes a fresh one, a remembered one stays as it is.
    const y2k = new Date("2000-01-01T00:00:00Z");
    const mark = (a: Archive) => fs.utimesSync(a.path, y2k, y2k);
    const packedAgain = (a: Archive) => fs.statSync(a.path).mtimeMs !== y2k.getTime();

    it("unchanged files: the second build returns the first archive without packing (the archive file is not written again)", async () => {
      await settled();
      const one = buildArchive(app, { settleMs: 50 });
      mark(one);
      const two = buildArchive(app, { settleMs: 50 });
      assert.deepEqual(two, one);
      assert.equal(packedAgain(two), false);
    });

    it("a file rewritten with the same size and its mtime set back is packed again (ctime moved), with the new content's hash", async () => {
      await settled();
      const one = buildArchive(app, { settleMs: 50 });
      const file = path.join(app, "pkg", "b.py");
      const { atime, mtime } = fs.statSync(file);
      fs.writeFileSync(file, "x = 2\n");
      fs.utimesSync(file, atime, mtime);
      const two = buildArchive(app, { settleMs: 50 });
      assert.notEqual(two.sha256, one.sha256);
      assert.notEqual(two.files["pkg/b.py"], one.files["pkg/b.py"]);
      assert.equal(two.files["a.py"], one.files["a.py"]);
    });

    it("a new file and a removed file change the archive; an excluded name added packs again to the same bytes, which the next build then reuses", async () => {
      await settled();
      const one = buildArchive(app, { settleMs: 50 });
      mark(one);
      fs.writeFileSync(path.join(app, "c.py"), "\n");
      await settled();
      const two = buildArchive(app, { settleMs: 50 });
      assert.deepEqual(Object.keys(two.files).sort(), ["a.py", "c.py", "pkg/b.py"]);
      fs.rmSync(path.join(app, "c.py"));
      await settled();
      const three = buildArchive(app, { settleMs: 50 });
      assert.equal(three.sha256, one.sha256);
      assert.equal(packedAgain(three), true);
      mark(three);
      fs.mkdirSync(path.join(app, "pkg", "__pycache__"));
      fs.writeFileSync(path.join(app, "pkg", "__pycache__", "b.pyc"), "junk");
      // pkg/ itself changed (a new name in it): packed again, to the same bytes.
      await settled();
      const four = buildArchive(app, { settleMs: 50 });
      assert.equal(four.sha256, one.sha256);
      assert.equal(packedAgain(four), true);
      mark(four);
      const five = buildArchive(app, { settleMs: 50 });
      assert.deepEqual(five, four);
      assert.equal(packedAgain(five), false);
    });

    it("files changed within settleMs before the pack are not remembered: the next build packs again", () => {
      const one = buildArchive(app, { settleMs: 60_000 });
      mark(one);
      const two = buildArchive(app, { settleMs: 60_000 });
      assert.equal(two.sha256, one.sha256);
      assert.equal(packedAgain(two), true);
    });

    it("a remembered archive whose file left the cache is packed again", async () => {
      await settled();
      const one = buildArchive(app, { settleMs: 50 });
      fs.rmSync(one.path);
      const two = buildArchive(app, { settleMs: 50 });
      assert.equal(two.sha256, one.sha256);
      assert.ok(fs.existsSync(two.path));
    });

    it("the same folder with another file list is another archive", async () => {
      await settled();
      const all = buildArchive(app, { settleMs: 50 });
      mark(all);
      const some = buildArchive(app, { settleMs: 50, files: ["a.py"] });
      assert.deepEqual(Object.keys(some.files), ["a.py"]);
      assert.notEqual(some.sha256, all.sha256);
      assert.deepEqual(buildArchive(app, { settleMs: 50 }), all);
      assert.equal(packedAgain(all), false);
    });
  });

  describe("portable packing (node-tar, no platform tar)", () => {
    let prev: string | undefined;
    beforeEach(() => {
      prev = process.env["AYNA_ARCHIVE_DIR"];
      process.env["AYNA_ARCHIVE_DIR"] = path.join(tmp, "cache");
    });
    afterEach(() => {
      if (prev === undefined) delete process.env["AYNA_ARCHIVE_DIR"];
      else process.env["AYNA_ARCHIVE_DIR"] = prev;
    });

    /** The same small app, made as a checkout under `umask` would be: files in the given order, every mtime set. */
    function makeApp(name: string, order: string[], umask: number, mtime: Date): string {
      const app = path.join(tmp, name);
      fs.mkdirSync(app, { mode: 0o777 & ~umask });
      const content: Record<string, [string, boolean]> = {
        "a.py": ["print(1)\n", false],
        "pkg/__init__.py": ["", false],
        "pkg/run.sh": ["#!/bin/sh\necho hi\n", true],
        "pkg/__pycache__/x.pyc": ["junk", false],
        ".env.local": ["SECRET=1\n", false],
        ".envrc": ["kept\n", false],
      };
      for (const f of order) {
        const [text, executable] = content[f]!;
        for (let d = path.dirname(f); d !== "."; d = path.dirname(d)) {
          fs.mkdirSync(path.join(app, d), { recursive: true });
          fs.chmodSync(path.join(app, d), 0o777 & ~umask);
        }
        fs.writeFileSync(path.join(app, f), text);
        fs.chmodSync(path.join(app, f), (executable ? 0o777 : 0o666) & ~umask);
        fs.utimesSync(path.join(app, f), mtime, mtime);
      }
      fs.symlinkSync("a.py", path.join(app, "link.py"));
      return app;
    }
    const files = ["a.py", "pkg/__init__.py", "pkg/run.sh", "pkg/__pycache__/x.pyc", ".env.local", ".envrc"];

    it("packs with tar and gzip off PATH: no platform tool is run", () => {
      const app = makeApp("app", files, 0o022, new Date(0));
      const path0 = process.env["PATH"];
      process.env["PATH"] = path.join(tmp, "empty");
      try {
        assert.match(buildArchive(app).sha256, /^[0-9a-f]{64}$/);
      } finally {
        process.env["PATH"] = path0;
      }
    });

    it("gives the same hash whatever the creation order, the mtimes and the umask of the checkout (022, 002, 077)", () => {
      const one = buildArchive(makeApp("one", files, 0o022, new Date("2020-01-01T00:00:00Z")));
      const two = buildArchive(makeApp("two", [...files].reverse(), 0o002, new Date("2026-12-03T06:00:00Z")));
      const three = buildArchive(makeApp("three", files, 0o077, new Date()));
      assert.equal(two.sha256, one.sha256);
      assert.equal(three.sha256, one.sha256);
      assert.deepEqual(three.files, one.files);
    });

    it("an executable bit still changes the hash (modes are git's two: 644 and 755)", () => {
      const app = makeApp("app", files, 0o022, new Date(0));
      const before = buildArchive(app);
      fs.chmodSync(path.join(app, "a.py"), 0o755);
      const after = buildArchive(app);
      assert.notEqual(after.sha256, before.sha256);
      assert.notEqual(after.files["a.py"], before.files["a.py"]);
      assert.equal(after.files["pkg/run.sh"], before.files["pkg/run.sh"]);
    });

    // Pinned: a change of packing (node-tar's version, options, the walk) shows here before it makes every stack release again.
    it("packs this small tree to the same pinned hash on every machine", () => {
      const a = buildArchive(makeApp("app", files, 0o002, new Date()));
      assert.equal(a.sha256, "a3446d29a3714b1c6571e0a275ac387784123e9bfa15b60ed445abe6cade266f");
    });

    it("hashes the uncompressed tar (gzip's bytes vary by zlib build), and the .tar.gz unpacks to it", () => {
      const a = buildArchive(makeApp("app", files, 0o022, new Date(0)));
      const raw = zlib.gunzipSync(fs.readFileSync(a.path));
      assert.equal(createHash("sha256").update(raw).digest("hex"), a.sha256);
      assert.equal(path.basename(a.path), `${a.sha256}.tar.gz`);
    });

    it("leaves out the excluded names at any depth (.env.*, __pycache__), keeps look-alikes (.envrc), sorts bytewise", () => {
      const app = makeApp("app", files, 0o022, new Date(0));
      assert.deepEqual(
        archiveEntries(app).map((e) => `${e.kind} ${e.name}`),
        ["file .envrc", "file a.py", "link link.py", "dir pkg", "file pkg/__init__.py", "file pkg/run.sh"],
      );
    });

    it("GNU tar (the hosts' tar) unpacks it: names, modes 644/755 from a umask-077 checkout, the link, owners 0, mtimes 0", () => {
      const a = buildArchive(makeApp("app", files, 0o077, new Date("2024-05-05T00:00:00Z")));
      const r = spawnSync("tar", ["-tvzf", a.path, "--numeric-owner"], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(
        r.stdout
          .trim()
          .split("\n")
          .map((l) => l.split(/\s+/))
          .map((f) => [f[0], f[1], f[3], ...f.slice(5)].join(" ")),
        [
          "-rw-r--r-- 0/0 1970-01-01 .envrc",
          "-rw-r--r-- 0/0 1970-01-01 a.py",
          "lrwxr-xr-x 0/0 1970-01-01 link.py -> a.py",
          "drwxr-xr-x 0/0 1970-01-01 pkg/",
          "-rw-r--r-- 0/0 1970-01-01 pkg/__init__.py",
          "-rwxr-xr-x 0/0 1970-01-01 pkg/run.sh",
        ],
      );
    });

    it("packs only the named files when given, a folder with all it holds, and names a missing one", () => {
      const app = makeApp("app", files, 0o022, new Date(0));
      assert.deepEqual(
        archiveEntries(app, { files: ["pkg", "a.py"] }).map((e) => e.name),
        ["a.py", "pkg", "pkg/__init__.py", "pkg/__pycache__", "pkg/__pycache__/x.pyc", "pkg/run.sh"],
      );
      assert.throws(
        () => buildArchive(app, { files: ["uv.lock"] }),
        /app\/uv\.lock does not exist: it cannot be packed/,
      );
    });
  });

  describe("a large file's digest (the Docker base image tarball's trigger)", () => {
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

    it("is the file's sha256, read again only when its stat data changed", () => {
      const env = { AYNA_ARCHIVE_DIR: path.join(tmp, "cache") };
      const file = path.join(tmp, "base.tar.gz");
      fs.writeFileSync(file, Buffer.alloc(3 << 20, 7));
      assert.equal(fileDigest(file, env), sha(Buffer.alloc(3 << 20, 7)));
      const memo = fs.readdirSync(env.AYNA_ARCHIVE_DIR).filter((f) => f.startsWith(".digest-"));
      assert.equal(memo.length, 1, "remembered beside the archives");
      assert.equal(fs.statSync(path.join(env.AYNA_ARCHIVE_DIR, memo[0]!)).mode & 0o777, 0o600);
      // A remembered digest is used as is: proven by planting another one for the same stat data.
      const m = path.join(env.AYNA_ARCHIVE_DIR, memo[0]!);
      const [stamp] = fs.readFileSync(m, "utf8").split("\n");
      fs.writeFileSync(m, `${stamp}\n${"e".repeat(64)}\n`);
      assert.equal(fileDigest(file, env), "e".repeat(64));
      // Same size, new content: the mtime and ctime moved, so it is read again.
      fs.writeFileSync(file, Buffer.alloc(3 << 20, 8));
      assert.equal(fileDigest(file, env), sha(Buffer.alloc(3 << 20, 8)));
    });

    it("ignores a damaged memo and reads the file", () => {
      const env = { AYNA_ARCHIVE_DIR: path.join(tmp, "cache") };
      const file = path.join(tmp, "f");
      fs.writeFileSync(file, "abc");
      fileDigest(file, env);
      const m = fs.readdirSync(env.AYNA_ARCHIVE_DIR).find((f) => f.startsWith(".digest-"))!;
      const [stamp] = fs.readFileSync(path.join(env.AYNA_ARCHIVE_DIR, m), "utf8").split("\n");
      fs.writeFileSync(path.join(env.AYNA_ARCHIVE_DIR, m), `${stamp}\nnot-a-digest\n`);
      assert.equal(fileDigest(file, env), sha(Buffer.from("abc")));
    });
  });
});
