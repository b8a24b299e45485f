// The stack configuration, described once: this table both documents every key
// (see `npm run config-docs`) and is what unknown or malformed keys are
// rejected against.

export type Field =
  | {
      kind: "string";
      doc: string;
      required?: boolean;
      default?: string;
      pattern?: RegExp;
      patternHint?: string;
      secret?: boolean;
    }
  | { kind: "int"; doc: string; required?: boolean; default?: number; min?: number; max?: number }
  | { kind: "bool"; doc: string; required?: boolean; default?: boolean }
  | { kind: "enum"; doc: string; required?: boolean; default?: string; values: readonly string[] }
  | { kind: "object"; doc: string; required?: boolean; fields: Record<string, Field> }
  | { kind: "array"; doc: string; required?: boolean; items: Field; minItems?: number };

export const projectNamePattern = /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/;

export const hostFields: Record<string, Field> = {
  name: {
    kind: "string",
    doc: "Short name of the host, used in resource names and messages.",
    required: true,
    pattern: /^[a-z][a-z0-9-]{0,30}$/,
    patternHint: "lower-case letters, digits and dashes, starting with a letter",
  },
  address: {
    kind: "string",
    doc: "IP address or DNS name that SSH connects to.",
    required: true,
    pattern: /^[A-Za-z0-9.:-]+$/,
    patternHint: "an IP address or a DNS name",
  },
  port: { kind: "int", doc: "SSH port.", default: 22, min: 1, max: 65535 },
  user: {
    kind: "string",
    doc: "User that SSH logs in as; needs passwordless sudo unless it is root.",
    default: "deploy",
    pattern: /^[a-z_][a-z0-9_-]{0,31}$/,
    patternHint: "a POSIX user name",
  },
  hostKey: {
    kind: "string",
    doc: 'The host\'s SSH public key, pinned ("ssh-ed25519 AAAA..."; get it with `ssh-keyscan -t ed25519 HOST`).',
    pattern:
      /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+=*( .*)?$/,
    patternHint: 'a public key line such as "ssh-ed25519 AAAA..."',
  },
  insecureIgnoreHostKey: {
    kind: "bool",
    doc: "Skip host key verification. Never for production; prefer pinning hostKey.",
    default: false,
  },
};

export const schema: Record<string, Field> = {
  project: {
    kind: "string",
    doc: "Project name: the /opt/ayna/{project} directory and the {project}-<role> unit names.",
    required: true,
    pattern: projectNamePattern,
    patternHint: "3-40 lower-case letters, digits and dashes, starting with a letter (no spaces or shell characters)",
  },
  stage: {
    kind: "enum",
    doc: "Deployment stage; selects shared/.env.{stage}. Defaults to the stack name.",
    values: ["dev", "staging", "production"],
  },
  hosts: {
    kind: "array",
    doc: "Hosts to deploy to.",
    required: true,
    minItems: 1,
    items: { kind: "object", doc: "One host.", fields: hostFields },
  },
  sshPrivateKey: {
    kind: "string",
    doc: "Private key for SSH (OpenSSH or PEM, unencrypted). Set with `pulumi config set --secret sshPrivateKey < key`.",
    required: true,
    secret: true,
  },
};
