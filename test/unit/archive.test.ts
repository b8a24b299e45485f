// The deploying machine's archive cache: private to the deploying user.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { archiveDir, buildArchive } from "../../local/archive";

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
});
