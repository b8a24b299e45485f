import { strict as assert } from "node:assert";
import { execFileSync, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseStat, removeFile, statFile, writeFileAtomic } from "../../builders/files";

describe("file command builders", () => {
  it("writes atomically: temp file, owner, mode, then rename", () => {
    assert.equal(
      writeFileAtomic(
        { path: "/opt/ayna/app/shared/.env.production", mode: "0600", owner: "app", group: "app" },
        { sudo: true },
      ),
      "sudo -n sh -c 'mkdir -p /opt/ayna/app/shared && tmp=$(mktemp -p /opt/ayna/app/shared .ayna-tmp..env.production.XXXXXX) && " +
        'cat > "$tmp" && chown app:app "$tmp" && chmod 0600 "$tmp" && mv -f "$tmp" /opt/ayna/app/shared/.env.production ' +
        '|| { rm -f "$tmp"; exit 1; }\'',
    );
  });

  it("rejects relative paths and .. segments", () => {
    assert.throws(() => writeFileAtomic({ path: "etc/x", mode: "0644" }), /must be absolute/);
    assert.throws(() => writeFileAtomic({ path: "/opt/../etc/x", mode: "0644" }), /without "\.\." segments/);
    assert.throws(() => removeFile("/tmp/a\nb"), /one line/);
  });

  it("lands hostile content verbatim and runs none of it (real sh, local temp dir)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-files-"));
    try {
      const target = path.join(dir, "sub dir", "it's.env");
      const canary = path.join(dir, "pwned");
      const content = `A='q"uo'te'\nB=$(touch ${canary})\nC=\`touch ${canary}\`\nD=multi\\\nline\n`;
      execFileSync("sh", ["-c", writeFileAtomic({ path: target, mode: "0640" })], { input: content });
      assert.equal(fs.readFileSync(target, "utf8"), content);
      assert.equal((fs.statSync(target).mode & 0o777).toString(8), "640");
      assert.equal(fs.existsSync(canary), false, "content must not execute");
      assert.deepEqual(fs.readdirSync(path.dirname(target)), ["it's.env"], "no temp file left behind");

      const st = parseStat(execFileSync("sh", ["-c", statFile(target)]).toString());
      assert.equal(st?.mode, "0640");
      assert.match(st?.sha256 ?? "", /^[0-9a-f]{64}$/);

      execFileSync("sh", ["-c", removeFile(target)]);
      assert.equal(parseStat(execFileSync("sh", ["-c", statFile(target)]).toString()), undefined);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("removes a file by hash only while it still holds the content written", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-files-"));
    try {
      const target = path.join(dir, "it's a unit");
      fs.writeFileSync(target, "ours\n");
      const ours = crypto.createHash("sha256").update("ours\n").digest("hex");
      fs.writeFileSync(target, "taken over\n");
      const kept = spawnSync("sh", ["-c", removeFile(target, { ifSha256: ours })], { encoding: "utf8" });
      assert.equal(kept.status, 0);
      assert.match(kept.stderr, /left .* in place: rewritten since this resource wrote it/);
      assert.equal(fs.readFileSync(target, "utf8"), "taken over\n");
      fs.writeFileSync(target, "ours\n");
      execFileSync("sh", ["-c", removeFile(target, { ifSha256: ours })]);
      assert.equal(fs.existsSync(target), false);
      execFileSync("sh", ["-c", removeFile(target, { ifSha256: ours })]);
      assert.throws(() => removeFile(target, { ifSha256: "$(reboot)" }), /invalid sha256/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("leaves the old file in place when a step fails", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-files-"));
    try {
      const target = path.join(dir, "f");
      fs.writeFileSync(target, "old\n");
      // chown to a user that does not exist fails after the content was written to the temp file.
      assert.throws(() =>
        execFileSync("sh", ["-c", writeFileAtomic({ path: target, mode: "0644", owner: "no-such-user-ayna" })], {
          input: "new\n",
          stdio: ["pipe", "pipe", "pipe"],
        }),
      );
      assert.equal(fs.readFileSync(target, "utf8"), "old\n");
      assert.deepEqual(fs.readdirSync(dir), ["f"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
