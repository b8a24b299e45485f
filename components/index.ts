export * from "./host";
export * from "./pythonRuntime";
export * from "./envFile";
export * from "./systemdService";
export * from "./release";
export * from "./database";
export * from "./proxy";
export * from "./dockerEngine";
