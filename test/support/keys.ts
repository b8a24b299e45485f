// Key pairs for tests. ssh2's generateKeyPairSync drops a leading zero byte
// of an ed25519 key (about one key in 370: a 31-byte key in the file), and
// ssh2's own parser, like OpenSSH, then refuses it; a test that drew such a
// key failed for a reason of the generator, not of the code under test.
import { utils as sshUtils } from "ssh2";

/** An ed25519 pair in OpenSSH format whose key is the full 32 bytes. */
export function ed25519KeyPair(): { private: string; public: string } {
  for (;;) {
    const k = sshUtils.generateKeyPairSync("ed25519");
    const blob = Buffer.from(k.public.split(" ")[1] ?? "", "base64");
    // string "ssh-ed25519" (4 + 11 bytes), then string key (4 + 32).
    if (blob.length === 51 && !(sshUtils.parseKey(k.private) instanceof Error)) return k;
  }
}
