// manifest.cbor, written last: every image file with its size and XXH3-128
// (HASH_ALG). Restore refuses a directory whose files do not match it exactly.
// One implementation hashes everything, libcr's (cr_hash_fd, and cr_dump_pages
// for the pages files, hashed as they are written); it runs at memory speed,
// so checking 1 GiB of pages costs a read of it and little more.
import { closeSync, openSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { CrError } from "../errors.ts";
import * as native from "../native/index.ts";
import { decodeImage, encodeImage } from "./codec.ts";
import { isLogFile, readImageFile, statImageFile, writeImageFile } from "./files.ts";
import { HASH_ALG, type ManifestImage } from "./schema.ts";

export const MANIFEST = "manifest.cbor";

export function hashFile(path: string): native.Digest {
  const fd = openSync(path, "r");
  try {
    return native.hashFd(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * List `names` with their sizes and hashes; `known` holds the digests of files
 * hashed while they were written (the pages), which are not read again.
 */
export function writeManifest(dir: string, names: string[], opts: { sync: boolean; known?: ReadonlyMap<string, native.Digest> }): void {
  const body: ManifestImage = {
    hashAlg: HASH_ALG,
    files: names.map((name) => {
      const { size } = statImageFile(dir, name);
      const d = opts.known?.get(name) ?? hashFile(join(dir, name));
      if (d.bytes !== size) throw new CrError("image", `${name}: ${size} bytes on disk, ${d.bytes} hashed (changed while being written)`);
      return { name, size, hash: d.hash };
    }),
  };
  writeImageFile(dir, MANIFEST, encodeImage("manifest", body), opts);
}

/**
 * Check every listed file (regular, same size, same hash) and that nothing
 * else is there. The content of the files `later` picks is not hashed now:
 * `checkLater` does it (restore runs it while the restored tasks read those
 * files, and lets no task run before it passed).
 */
export function verifyManifest(dir: string, later: (name: string) => boolean = () => false): { manifest: ManifestImage; checkLater: () => void } {
  // decodeImage has refused an unknown hashAlg, bad names and malformed hashes.
  const m = decodeImage("manifest", readImageFile(dir, MANIFEST), MANIFEST);
  const listed = new Set(m.files.map((f) => f.name));
  for (const f of m.files) {
    const { size } = statImageFile(dir, f.name);
    if (size !== f.size) throw new CrError("image", `${f.name}: ${size} bytes, the manifest says ${f.size} (truncated or changed)`);
  }
  for (const name of readdirSync(dir)) {
    if (name !== MANIFEST && !listed.has(name) && !isLogFile(name)) throw new CrError("image", `${name}: not in the manifest (stray file in the image directory)`);
  }
  const checkContent = (f: ManifestImage["files"][number]) => {
    const d = hashFile(join(dir, f.name));
    if (d.bytes !== f.size) throw new CrError("image", `${f.name}: ${d.bytes} bytes read, the manifest says ${f.size} (truncated or changed)`);
    if (d.hash !== f.hash) throw new CrError("image", `${f.name}: content does not match the manifest (corrupted)`);
  };
  for (const f of m.files) if (!later(f.name)) checkContent(f);
  return { manifest: m, checkLater: () => m.files.filter((f) => later(f.name)).forEach(checkContent) };
}
