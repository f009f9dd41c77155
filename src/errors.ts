// The one error type of cr. Every failure that reaches the user is a CrError:
// what was being done (op), on which task (pid), with which errno, and a
// one-line message that says what to do about it.

export class CrError extends Error {
  readonly op: string;
  readonly errno: number | undefined;
  readonly pid: number | undefined;
  /** The signal that stopped the operation (cr then exits with 128 + it). */
  readonly signal: number | undefined;

  constructor(op: string, message: string, opts: { errno?: number; pid?: number; signal?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "CrError";
    this.op = op;
    this.errno = opts.errno;
    this.pid = opts.pid;
    this.signal = opts.signal;
  }

  /** One line for the user: "op (pid N): message [errno NAME]". */
  oneLine(): string {
    const pid = this.pid === undefined ? "" : ` (pid ${this.pid})`;
    const errno = this.errno === undefined ? "" : ` [errno ${this.errno}]`;
    return `${this.op}${pid}: ${this.message}${errno}`;
  }
}

export function isCrError(e: unknown): e is CrError {
  return e instanceof CrError;
}
