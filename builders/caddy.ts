// Caddy in front: one site file per project in /etc/caddy/sites, rendered
// here from the stack's config, and the commands that put it in place through
// `ayna-proxy` (validated by Caddy first, kept only when every domain answers
// after the graceful reload). Caddy is Debian's service in venv mode and the
// host's proxy container in Docker mode.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { argv } from "./shell";

/** Debian's caddy, under its own systemd unit. */
export const caddyPackage = "caddy";

export interface SiteSpec {
  project: string;
  stage: string;
  /** Site addresses: the names this project answers to. */
  domains: string[];
  /** `internal`: Caddy's own CA (tests, private networks); `auto`: public certificates (ACME). */
  tls: "auto" | "internal";
  /** ACME account e-mail, with `auto`. */
  email?: string;
  /** The web service's loopback port, when web runs. */
  webPort?: number;
  /** The api service's loopback port and its path prefix (stripped before the api sees it; "/" for all). */
  api?: { port: number; path: string };
  /** Health paths the gate asks for through Caddy, per enabled role. */
  healthPaths: { web?: string; api?: string };
  /**
   * URL path (slashes at both ends) Caddy answers from ROOT, the serving
   * release's static files through the `current` link, so a release's switch
   * moves it too; a file not there goes to web, path unchanged.
   * @default none: web answers every path
   */
  staticFiles?: { path: string; root: string };
  /**
   * Docker mode: per role, the unix socket (a symlink the release tool moves
   * at each blue-green switch) Caddy proxies to instead of the port.
   * @default none: the role's loopback port
   */
  upstreamSockets?: { web?: string; api?: string };
  /**
   * Docker mode: Caddy is the host's proxy container (`ayna-proxy`), built
   * FROM this image with Debian's caddy, instead of Debian's caddy service.
   * @default none: Debian's caddy under systemd
   */
  containerBase?: string;
}

/** The system user Caddy runs as, in both modes (Docker mode's bootstrap makes it; Debian's package does otherwise). */
export const caddyUser = "caddy";

/** Docker mode: the host's one container that publishes ports (80, 443). */
export const proxyContainer = "ayna-proxy";

/**
 * How long Caddy keeps trying an upstream that refused a connection before
 * answering 502: a release hands the listening socket over, so a refusal is
 * not expected, but a stop and start by hand should not cost requests.
 */
export const upstreamRetrySeconds = 5;

function upstream(port: number, socket?: string): string[] {
  const to = socket !== undefined ? `unix/${socket}` : `127.0.0.1:${port}`;
  return [`reverse_proxy ${to} {`, `\tlb_try_duration ${upstreamRetrySeconds}s`, "}"];
}

const indent = (lines: string[], by = "\t") => lines.map((l) => (l === "" ? l : by + l));

/**
 * Django's hashed names (ManifestStaticFilesStorage: `name.<12 hex>.ext`)
 * never change content, so browsers may keep them for good, as WhiteNoise
 * lets them.
 */
const hashedName = "\\.[0-9a-f]{12}\\.[A-Za-z0-9]+$";

/**
 * Static files from disk: precompressed variants (WhiteNoise's .br and .gz)
 * when the client takes them. What is not there (a name the build did not
 * make, a release whose files Caddy may not read) goes to web with its path
 * as it came.
 */
function staticBlock(st: { path: string; root: string }, webPort: number, webSocket?: string): string[] {
  return [
    `handle_path ${st.path}* {`,
    ...indent([
      `root * ${st.root}`,
      "@file file",
      "handle @file {",
      ...indent([
        `@hashed path_regexp ${hashedName}`,
        'header @hashed Cache-Control "public, max-age=315360000, immutable"',
        "file_server {",
        "\tprecompressed br gzip",
        "}",
      ]),
      "}",
      "handle {",
      ...indent([`rewrite * ${st.path.slice(0, -1)}{path}`, ...upstream(webPort, webSocket)]),
      "}",
    ]),
    "}",
  ];
}

/** The project's site file: its domains, TLS, the api under its path and web at the root. */
export function renderSite(s: SiteSpec): string {
  const body: string[] = [];
  if (s.tls === "internal") body.push("tls internal");
  else if (s.email) body.push(`tls ${s.email}`);
  body.push("encode zstd gzip");
  if (s.api && s.api.path !== "/") {
    body.push(
      "",
      `@api path ${s.api.path} ${s.api.path}/*`,
      "handle @api {",
      ...indent([`uri strip_prefix ${s.api.path}`, ...upstream(s.api.port, s.upstreamSockets?.api)]),
      "}",
    );
  }
  if (s.staticFiles && s.webPort !== undefined)
    body.push("", ...staticBlock(s.staticFiles, s.webPort, s.upstreamSockets?.web));
  const rootIsApi = s.api?.path === "/";
  const root = rootIsApi ? s.api?.port : s.webPort;
  const rootSocket = rootIsApi ? s.upstreamSockets?.api : s.upstreamSockets?.web;
  if (root !== undefined) body.push("", "handle {", ...indent(upstream(root, rootSocket)), "}");
  return [
    `# ayna-deploy: ${s.project} (${s.stage}), written from its stack config; change it there.`,
    `${s.domains.join(", ")} {`,
    ...indent(body),
    "}",
    "",
  ].join("\n");
}

/** What ayna-proxy checks through Caddy after a reload: DOMAIN|PATH|TLS per domain and role. */
export function siteChecks(s: SiteSpec): string[] {
  const paths: string[] = [];
  if (s.healthPaths.web !== undefined && s.webPort !== undefined) paths.push(s.healthPaths.web);
  if (s.healthPaths.api !== undefined && s.api) {
    const prefix = s.api.path === "/" ? "" : s.api.path;
    paths.push(prefix + s.healthPaths.api);
  }
  return s.domains.flatMap((d) => paths.map((p) => `${d}|${p}|${s.tls}`));
}

const script = fs.readFileSync(path.join(__dirname, "ayna-proxy.sh"), "utf8");

function proxyTool(containerBase: string | undefined, ...args: string[]): string {
  const mode = containerBase !== undefined ? ["--container", containerBase] : [];
  return argv("sudo", "-n", "bash", "-c", script, "ayna-proxy", ...mode, ...args);
}

/** Puts the site (on stdin) in place, gated; the previous site stays when it fails. */
export function applySiteCommand(s: SiteSpec): string {
  return proxyTool(s.containerBase, "apply", s.project, ...siteChecks(s));
}

/** Takes the project's site away (validated first); other projects' sites stay. */
export function removeSiteCommand(s: Pick<SiteSpec, "project" | "containerBase">): string {
  return proxyTool(s.containerBase, "remove", s.project);
}

/** For refresh: the site on the host is the one rendered, and Caddy runs. */
export function verifySiteCommand(s: Pick<SiteSpec, "project" | "containerBase">, site: string): string {
  return proxyTool(s.containerBase, "verify", s.project, createHash("sha256").update(site).digest("hex"));
}
