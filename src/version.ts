import pkg from "../package.json" with { type: "json" };

export const CR_VERSION: string = pkg.version;

/** Set by `bun build --define` (Makefile): the commit dist/cr was built from, "+dirty" with local changes. */
declare const CR_BUILD_COMMIT: string | undefined;
export const CR_COMMIT: string = typeof CR_BUILD_COMMIT === "string" ? CR_BUILD_COMMIT : "unknown (not built by make)";
