import pkg from "../package.json" with { type: "json" };

export const CR_VERSION: string = pkg.version;
