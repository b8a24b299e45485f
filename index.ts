// The program: stack config in, hosts provisioned and releases deployed.
import { Host } from "./components";
import { loadStackConfig } from "./stacks";

const config = loadStackConfig();

const hosts = config.hosts.map(
  (h) =>
    new Host(h.name, {
      project: config.project,
      address: h.address,
      port: h.port,
      user: h.user,
      privateKey: config.sshPrivateKey,
      hostKey: h.hostKey,
      insecureIgnoreHostKey: h.insecureIgnoreHostKey,
    }),
);

export const project = config.project;
export const stage = config.stage;
export const hostAddresses = config.hosts.map((h) => h.address);
export const templateVersionSha256 = hosts.map((h) => h.templateVersionFile.sha256);
