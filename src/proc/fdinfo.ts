// /proc/PID/fdinfo/FD.

export interface FdInfo {
  pos: number;
  flags: number;
  mntId: number | undefined;
  ino: number | undefined;
  fields: Record<string, string>;
}

export function parseFdinfo(text: string): FdInfo {
  const fields: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) fields[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  if (fields.pos === undefined || fields.flags === undefined) throw new Error("fdinfo without pos/flags");
  return {
    pos: Number(fields.pos),
    flags: parseInt(fields.flags, 8),
    mntId: fields.mnt_id === undefined ? undefined : Number(fields.mnt_id),
    ino: fields.ino === undefined ? undefined : Number(fields.ino),
    fields,
  };
}
