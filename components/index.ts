export * from "./host";
export * from "./resources";
