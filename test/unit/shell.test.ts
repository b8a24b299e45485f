import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { and, argv, fileMode, or, quote, seq, shell } from "../../builders/shell";

describe("shell quoting", () => {
  const cases: [string, string][] = [
    ["plain", "plain"],
    ["/opt/ayna/app/releases/v1", "/opt/ayna/app/releases/v1"],
    ["", "''"],
    ["has space", "'has space'"],
    ["it's", `'it'\\''s'`],
    ["$(reboot)", "'$(reboot)'"],
    ["`id`", "'`id`'"],
    ["a\nb", "'a\nb'"],
    ["ünïcødé", "'ünïcødé'"],
    ["semi;colon", "'semi;colon'"],
  ];
  for (const [input, want] of cases) {
    it(`quotes ${JSON.stringify(input)} as ${want}`, () => assert.equal(quote(input), want));
  }

  it("round-trips hostile words through a real sh unchanged", () => {
    const words = ["it's", "$(touch /tmp/pwned)", "`id`", "a\nb", '"dq"', "\\back", "*", "~"];
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${words.map(quote).join(" ")}`]).toString();
    assert.deepEqual(out.split("\0").slice(0, -1), words);
  });

  it("composes argv and operators", () => {
    assert.equal(argv("systemctl", "restart", "my app"), "systemctl restart 'my app'");
    assert.equal(and("a", "", "b"), "a && b");
    assert.equal(or("a", "b"), "a || b");
    assert.equal(seq("a", "b"), "a; b");
    assert.equal(shell("echo hi && id", { sudo: true }), "sudo -n sh -c 'echo hi && id'");
    assert.equal(shell("true"), "sh -c true");
  });

  it("accepts only octal modes", () => {
    assert.equal(fileMode("600"), "0600");
    assert.equal(fileMode("0644"), "0644");
    assert.equal(fileMode(0o640), "0640");
    assert.throws(() => fileMode("0999"), /invalid file mode/);
    assert.throws(() => fileMode("u+x"), /invalid file mode/);
  });
});
