// `import x from "…" with { type: "file" }` yields a path string.
declare module "*.so" {
  const path: string;
  export default path;
}
declare module "*.bin" {
  const path: string;
  export default path;
}
