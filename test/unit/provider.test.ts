import { strict as assert } from "node:assert";
import { utils as sshUtils } from "ssh2";
import { diffCommand } from "../../plugins/provider/command";
import { diffFile, sha256 } from "../../plugins/provider/file";
import { typeOfUrn } from "../../plugins/provider/main";
import { diffSecret, generate } from "../../plugins/provider/randomSecret";
import {
  containsUnknown,
  reveal,
  scrub,
  secretStrings,
  unknownValue,
  wrapSecret,
} from "../../plugins/provider/secrets";
import { fingerprint, hostKeyBlob, validateConnection } from "../../plugins/provider/ssh";

const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPGVtSKQWjur8Pq/ONhmYCAWFTjQzutzjFtNZ0WGKGWw";
const pem = sshUtils.generateKeyPairSync("ed25519").private;
const conn = { host: "10.0.0.5", port: 22, user: "deploy", privateKey: wrapSecret(pem), hostKey };

describe("ayna provider", () => {
  it("reads the resource type from a URN, nested or not", () => {
    assert.equal(typeOfUrn("urn:pulumi:s::p::ayna:components:Host$ayna:remote:File::web1-x"), "ayna:remote:File");
    assert.equal(typeOfUrn("urn:pulumi:s::p::ayna:random:Secret::k"), "ayna:random:Secret");
  });

  describe("connection validation", () => {
    it("accepts an OpenSSH key with a pinned host key", () =>
      assert.deepEqual(validateConnection(reveal(conn) as object), []));

    it("names the field and never echoes a malformed key", () => {
      const errs = validateConnection({
        ...(reveal(conn) as object),
        privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nZZZZsecretZZZZ\n-----END OPENSSH PRIVATE KEY-----",
      });
      assert.equal(errs.length, 1);
      assert.equal(errs[0]?.property, "connection.privateKey");
      assert.ok(!JSON.stringify(errs).includes("ZZZZsecretZZZZ"));
    });

    it("requires a pinned host key unless explicitly waived", () => {
      const { hostKey: _omit, ...noKey } = reveal(conn) as Record<string, unknown>;
      void _omit;
      assert.equal(validateConnection(noKey)[0]?.property, "connection.hostKey");
      assert.deepEqual(validateConnection({ ...noKey, insecureIgnoreHostKey: true }), []);
    });

    it("fingerprints host keys like ssh-keygen -l", () => {
      const blob = hostKeyBlob(hostKey);
      assert.ok(blob);
      assert.match(fingerprint(blob), /^SHA256:[A-Za-z0-9+/]{43}$/);
      assert.equal(hostKeyBlob("garbage"), undefined);
    });
  });

  describe("secrets", () => {
    it("reveals nested secrets and scrubs them from output", () => {
      const v = { a: wrapSecret("hunter2-password"), b: ["x", wrapSecret({ c: "line-one\nline-two" })] };
      assert.deepEqual(reveal(v), { a: "hunter2-password", b: ["x", { c: "line-one\nline-two" }] });
      const s = secretStrings(v);
      assert.equal(scrub("err: hunter2-password near line-two", s), "err: [secret] near [secret]");
      assert.equal(scrub("x is fine", s), "x is fine");
    });

    it("sees unknowns inside secrets", () => {
      assert.equal(containsUnknown({ a: wrapSecret(unknownValue) }), true);
      assert.equal(containsUnknown({ a: "b" }), false);
    });
  });

  describe("diff: an unchanged input runs nothing", () => {
    const cmd = { connection: conn, create: "echo hi", stdin: wrapSecret("s3cret") };

    it("command: no change, no run", () => assert.deepEqual(diffCommand(cmd, cmd), { changes: false, replaces: [] }));
    it("command: secretness alone is not a change", () =>
      assert.equal(diffCommand(cmd, { ...cmd, stdin: "s3cret" }).changes, false));
    it("command: a new stdin value is", () =>
      assert.equal(diffCommand(cmd, { ...cmd, stdin: wrapSecret("other") }).changes, true));
    it("command: a new host replaces", () =>
      assert.deepEqual(diffCommand(cmd, { ...cmd, connection: { ...conn, host: "10.0.0.6" } }).replaces, [
        "connection",
      ]));
    it("command: unknown during preview counts as a change", () =>
      assert.equal(diffCommand(cmd, { ...cmd, create: unknownValue }).changes, true));

    const file = { connection: conn, path: "/etc/x", content: "a\n", mode: "0644" };
    const written = { ...file, sha256: sha256("a\n") };
    it("file: same content, no change", () => assert.equal(diffFile(written, file).changes, false));
    it("file: content drift found by refresh is repaired", () =>
      assert.equal(diffFile({ ...written, sha256: sha256("tampered") }, file).changes, true));
    it("file: mode drift is repaired", () => assert.equal(diffFile({ ...written, mode: "0777" }, file).changes, true));
    it("file: a new path replaces", () =>
      assert.deepEqual(diffFile(written, { ...file, path: "/etc/y" }).replaces, ["path"]));

    it("secret: stable unless keepers change", () => {
      assert.equal(diffSecret({ length: 50 }, { length: 50 }).changes, false);
      assert.deepEqual(diffSecret({ keepers: { a: "1" } }, { keepers: { a: "2" } }).replaces, ["keepers"]);
    });
  });

  it("generates secrets from the asked alphabet and length", () => {
    const v = generate(64, "alnum");
    assert.equal(v.length, 64);
    assert.match(v, /^[A-Za-z0-9]+$/);
    assert.notEqual(generate(64, "alnum"), v);
  });
});
