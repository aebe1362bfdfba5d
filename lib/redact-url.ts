// Connection URLs (DATABASE_URL, REDIS_URL) appear in error messages and the demo's output: never with their
// password.

/** `url` with its password replaced by `***`; `variable` names the setting when the URL does not parse. */
export function redactUrl(url: string, variable: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return `(unparseable ${variable})`;
  }
}
