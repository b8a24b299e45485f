import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { applySiteCommand, removeSiteCommand, renderSite, SiteSpec, verifySiteCommand } from "../builders/caddy";
import { RemoteCommand } from "../sdk/remoteCommand";

export interface ProxyArgs {
  /**
   * The project's site: its domains, TLS mode and the loopback ports of web
   * and api (see `renderSite`).
   */
  readonly site: SiteSpec;
  /**
   * Seconds the whole apply may take (Caddy's validation, the reload and the
   * answers through it).
   * @default 180
   */
  readonly timeoutSeconds?: number;
}

/**
 * Caddy in front of one project on one host (venv mode: Debian's caddy,
 * installed by the host's bootstrap; Docker mode: the host's `ayna-proxy`
 * container, see `SiteSpec.containerBase`): the only listener on ports 80 and
 * 443, `/` to web and the api under its path, on the services' 127.0.0.1
 * ports (Docker mode: their sockets). A change of site is
 * validated by Caddy before it is put in place, reloaded gracefully (Caddy
 * keeps serving the old configuration until the new one is loaded), and kept
 * only when every domain answers through Caddy; otherwise the previous site is
 * back and `up` fails with Caddy's words. Removing it takes only this
 * project's site away.
 */
export class Proxy extends pulumi.ComponentResource {
  /** The site file's text, as written to /etc/caddy/sites/{project}.caddy. */
  public readonly site: string;
  public readonly apply: RemoteCommand;

  constructor(name: string, args: ProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:Proxy", name, {}, opts);
    this.site = renderSite(args.site);
    this.apply = new RemoteCommand(
      `${name}-site`,
      {
        create: applySiteCommand(args.site),
        delete: removeSiteCommand(args.site),
        stdin: this.site,
        triggers: [
          createHash("sha256").update(this.site).digest("hex"),
          // Moving between Debian's caddy and the proxy container applies again.
          ...(args.site.containerBase !== undefined ? [`container:${args.site.containerBase}`] : []),
        ],
        // Refresh sees a site edited by hand, or Caddy stopped.
        check: verifySiteCommand(args.site, this.site),
        timeoutSeconds: args.timeoutSeconds ?? 180,
        // What ayna-proxy did (the domains it serves, a warning) in `pulumi up`.
        logStderr: true,
      },
      { parent: this },
    );
    this.registerOutputs({ site: this.site });
  }
}
