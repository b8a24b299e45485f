// Pulumi mocks that record every resource the program registers.
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

export const recorded: Recorded[] = [];

export function installMocks(project = "ayna-deploy", stack = "staging"): void {
  recorded.length = 0;
  void pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
        recorded.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
        const state: Record<string, unknown> = { ...args.inputs };
        if (args.type === "ayna:random:Secret") state["value"] = `mock-secret-${args.name}`;
        return { id: `${args.name}-id`, state };
      },
      call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
        return args.inputs as Record<string, unknown>;
      },
    },
    project,
    stack,
    false,
  );
}

/** Resolves an Output in tests, with whether it is secret. */
export function settle<T>(o: pulumi.Output<T>): Promise<{ value: T; secret: boolean }> {
  return new Promise((resolve) => {
    pulumi.all([o, (o as unknown as { isSecret: Promise<boolean> }).isSecret]).apply(([value, secret]) => {
      resolve({ value: value as T, secret });
    });
  });
}
