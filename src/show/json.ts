// Decoded records as JSON: bigints as decimal strings, raw byte fields as their
// length (plus hex when short), registers by name, IP addresses as text too, page runs as ranges. Never
// raw page contents.
import type { PagemapImage } from "../images/index.ts";
import { hex, ipAddress, registers } from "./names.ts";

const SHORT_BYTES = 32;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function bytesJson(b: Uint8Array, key: string): Json {
  if (key === "regs") {
    const named = registers(b);
    if (named) return Object.fromEntries(named.map(([n, v]) => [n, hex(v)]));
  }
  // A TCP listener's address (files.cbor "inet"): also as text.
  if (key === "address" && (b.length === 4 || b.length === 16)) return { bytes: b.length, hex: Buffer.from(b).toString("hex"), ip: ipAddress(b) };
  return b.length <= SHORT_BYTES ? { bytes: b.length, hex: Buffer.from(b).toString("hex") } : { bytes: b.length };
}

/** A decoded record (plain objects, arrays, numbers, strings, bigints, bytes) as JSON. */
export function toJson(v: unknown, key = ""): Json {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") return v;
  if (v instanceof Uint8Array) return bytesJson(v, key);
  if (Array.isArray(v)) return v.map((x) => toJson(x, key));
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), toJson(x, String(k))]));
  if (typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x, k)]));
  return String(v);
}

export function pagemapJson(p: PagemapImage, pageSize: number): Json {
  return p.entries.map((e) => ({ start: e.start, end: e.start + e.pages * pageSize, pages: e.pages, offset: e.offset }));
}
