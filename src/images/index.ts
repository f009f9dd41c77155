// The image layer: names of the files, records, codec, manifest, directory I/O.
export * from "./schema.ts";
export { encodeImage, decodeImage } from "./codec.ts";
export { MANIFEST, writeManifest, verifyManifest } from "./manifest.ts";
export { loadImageSet, type EpollRegistration, type ImageSet, type TaskImages } from "./imageset.ts";
export { createImageDir, checkImageDirSafe, writeImageFile, readImageFile, statImageFile, syncFile } from "./files.ts";

export const INVENTORY = "inventory.cbor";
export const TREE = "tree.cbor";
export const FILES = "files.cbor";
export const taskFile = (pid: number) => `task-${pid}.cbor`;
export const pagemapFile = (pid: number) => `pagemap-${pid}.cbor`;
export const pagesFile = (pid: number) => `pages-${pid}.img`;
export const shmemFile = (id: number) => `shmem-${id}.img`;
export const ghostFile = (id: number) => `ghost-${id}.img`;
