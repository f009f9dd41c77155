// CRIU's command-line spellings that cac cannot take as they are, made into
// ones it can, so that scripts written for `criu` run unchanged: verbosity
// as -v0 .. -v4 or -v repeated (-vv, -v -v), and option names reported back
// as the user typed them. Pure: argv in, argv out.

/** CRIU's default log level (warnings), and its most verbose (debug). */
export const DEFAULT_VERBOSITY = 2;
export const MAX_VERBOSITY = 4;

/**
 * `argv` (after the program) with every verbosity spelling (-v, -vv, -vN,
 * --verbose) taken out and one `--verbosity N` put in their place when any
 * was given: -vN sets N, each v or --verbose adds one to CRIU's default (2),
 * at most 4.
 */
export function normalizeVerbosity(argv: string[]): string[] {
  let level: number | undefined;
  const out: string[] = [];
  for (const a of argv) {
    if (a === "--") {
      out.push(...argv.slice(argv.indexOf(a)));
      break;
    }
    const n = /^-v([0-9])$/.exec(a);
    if (n) {
      level = Number(n[1]);
    } else if (/^-v+$/.test(a)) {
      level = (level ?? DEFAULT_VERBOSITY) + a.length - 1;
    } else if (a === "--verbose") {
      level = (level ?? DEFAULT_VERBOSITY) + 1;
    } else {
      out.push(a);
      continue;
    }
  }
  if (level !== undefined) out.push("--verbosity", String(Math.min(level, MAX_VERBOSITY)));
  return out;
}

/** cac's name for an option: --ext-unix-sk is extUnixSk. */
function cacName(token: string): string {
  return token.replace(/^-{1,2}/, "").replace(/=.*$/, "").replace(/^no-/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** cac's "Unknown option `--extUnixSk`", with the option as `argv` spelled it (`--ext-unix-sk`). */
export function asTyped(message: string, argv: string[]): string {
  const m = /^Unknown option `(-{1,2})([^`]+)`/.exec(message);
  if (!m) return message;
  const typed = argv.find((a) => a.startsWith(m[1]!) && cacName(a) === m[2]);
  return typed === undefined ? message : message.replace(`${m[1]}${m[2]}`, typed.replace(/=.*$/, ""));
}
