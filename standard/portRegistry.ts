// The port registry of standard v2.0: every project owns ten ports, all bound
// to 127.0.0.1, with fixed offsets inside its range.

/** v2.0's table. v1.0 named the 8100 range "ayna"; v2.0 ("ayna-comply") wins. */
export const registry: Readonly<Record<string, number>> = {
  "ayna-comply": 8100,
  "ayna-fly": 8110,
  aynasite: 8120,
  uavcrew: 8130,
  skybookus: 8140,
};

/** Offsets within a range (+5..+9 are reserved). */
export const offsets = { web: 0, api: 1, docs: 2, websocket: 3, admin: 4 } as const;
export type PortRole = keyof typeof offsets;

/**
 * Two of the reserved offsets (+5..+9) carry a new release's candidate
 * processes while it is health-checked, before any traffic is switched to it.
 */
export const candidateOffsets = { web: 5, api: 6 } as const;

export const rangeSize = 10;
/** The only address services may bind: only the reverse proxy faces the network. */
export const bindAddress = "127.0.0.1";

export interface PortRange {
  base: number;
  /** Where the range comes from. */
  source: "registry" | "declared";
}

export class PortError extends Error {}

/**
 * The project's range: the registry's for a listed project; otherwise the
 * declared one, which must be a whole block of ten that overlaps no listed range.
 */
export function rangeFor(project: string, declaredBase?: number): PortRange {
  const listed = registry[project];
  if (listed !== undefined) {
    if (declaredBase !== undefined && declaredBase !== listed) {
      throw new PortError(
        `ports.base: ${project} owns ${listed}-${listed + rangeSize - 1} in the port registry; remove ports.base or set it to ${listed}`,
      );
    }
    return { base: listed, source: "registry" };
  }
  if (declaredBase === undefined) {
    throw new PortError(
      `ports.base: ${project} is not in the port registry (${Object.keys(registry).join(", ")}); ` +
        `declare a free range of ten, e.g. ports.base: ${suggestFreeBase()}`,
    );
  }
  if (
    !Number.isInteger(declaredBase) ||
    declaredBase % rangeSize !== 0 ||
    declaredBase < 1024 ||
    declaredBase > 65530
  ) {
    throw new PortError(`ports.base: ${declaredBase} must be a multiple of 10 between 1030 and 65530`);
  }
  for (const [name, base] of Object.entries(registry)) {
    if (declaredBase === base) {
      throw new PortError(
        `ports.base: ${declaredBase}-${declaredBase + 9} belongs to ${name} in the port registry; pick a free range such as ${suggestFreeBase()}`,
      );
    }
  }
  return { base: declaredBase, source: "declared" };
}

export function suggestFreeBase(): number {
  const taken = new Set(Object.values(registry));
  let b = 8100;
  while (taken.has(b)) b += rangeSize;
  return b;
}

export function portFor(range: PortRange, role: PortRole): number {
  return range.base + offsets[role];
}

/** Checks an explicitly configured port against the project's range. */
export function checkPort(project: string, range: PortRange, role: PortRole, port: number): void {
  const fix = `use ${portFor(range, role)} (the registry's +${offsets[role]} for ${role}) or leave it unset`;
  if (port < range.base || port >= range.base + rangeSize) {
    throw new PortError(
      `services.${role}.port: ${port} is outside ${project}'s range ${range.base}-${range.base + rangeSize - 1}; ${fix}`,
    );
  }
  const offset = port - range.base;
  const candidateOf = Object.entries(candidateOffsets).find(([, o]) => o === offset)?.[0];
  if (candidateOf) {
    throw new PortError(
      `services.${role}.port: ${port} is ${project}'s reserved +${offset}, where a new ${candidateOf} release ` +
        `is health-checked before the switch; ${fix}`,
    );
  }
  if (range.source === "registry" && offset !== offsets[role]) {
    throw new PortError(
      `services.${role}.port: ${project} is in the standard's port registry, which fixes ${role} at ` +
        `+${offsets[role]}; ${fix}`,
    );
  }
}

export function checkBind(role: string, address: string): void {
  if (address !== bindAddress) {
    throw new PortError(
      `services.${role}.bind: ${address} is not allowed; standard v2.0 binds every port to ${bindAddress} only (the reverse proxy faces the network)`,
    );
  }
}
