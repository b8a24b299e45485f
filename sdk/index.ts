export * from "./connection";
export * from "./remoteCommand";
export * from "./remoteFile";
export * from "./randomSecret";
