// CBOR encoding of image files: an envelope with magic, kind and format
// version around a record with named fields.
import { Decoder, Encoder } from "cbor-x";
import { CrError } from "../errors.ts";
import { FORMAT, MAGIC, RECORDS, type ImageBody, type ImageKind } from "./schema.ts";
import { ValidationError } from "./validate.ts";
import { checkRecord } from "./semantic.ts";

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, largeBigIntToFloat: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" } as ConstructorParameters<typeof Decoder>[0]);
export const MAX_METADATA_BYTES = 256 << 20;

export function encodeImage<K extends ImageKind>(kind: K, body: ImageBody<K>): Uint8Array {
  return encoder.encode({ magic: MAGIC, kind, version: { major: FORMAT.major, minor: FORMAT.minor }, body });
}

export function decodeImage<K extends ImageKind>(kind: K, bytes: Uint8Array, fileName: string): ImageBody<K> {
  const bad = (msg: string, cause?: unknown) => new CrError("image", `${fileName}: ${msg}`, cause === undefined ? {} : { cause });
  if (bytes.length > MAX_METADATA_BYTES) throw bad(`${bytes.length} bytes is larger than any valid metadata file`);
  let env: unknown;
  try {
    env = decoder.decode(bytes);
  } catch (e) {
    throw bad(`not valid CBOR (${e instanceof Error ? e.message.split("\n")[0] : String(e)})`, e);
  }
  if (typeof env !== "object" || env === null) throw bad("not an image record");
  const e = env as Record<string, unknown>;
  if (e.magic !== MAGIC) throw bad("bad magic: not a cr image");
  if (e.kind !== kind) throw bad(`holds a ${String(e.kind)} record, expected ${kind}`);
  const v = e.version as Record<string, unknown> | undefined;
  const major = typeof v?.major === "number" ? v.major : typeof v?.major === "bigint" ? Number(v.major) : NaN;
  if (!Number.isInteger(major)) throw bad("missing format version");
  if (major > FORMAT.major) throw bad(`written by a newer cr (format ${major}.x); this cr reads ${FORMAT.major}.x`);
  if (major < FORMAT.major) throw bad(`format ${major}.x is not supported; this cr reads ${FORMAT.major}.x`);
  let body: ImageBody<K>;
  try {
    body = RECORDS[kind](e.body, "body") as ImageBody<K>;
  } catch (err) {
    if (err instanceof ValidationError) throw bad(err.message);
    throw bad(`invalid record (${err instanceof Error ? err.message : String(err)})`, err);
  }
  const problem = checkRecord(kind, body);
  if (problem !== null) throw bad(`body.${problem}`);
  return body;
}
