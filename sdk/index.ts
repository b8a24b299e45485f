// Typed client of the project's provider (`pulumi-resource-ayna`).
export * from "./provider";
export * from "./remoteCommand";
export * from "./remoteFile";
export * from "./randomSecret";
export * from "./deployPlan";
