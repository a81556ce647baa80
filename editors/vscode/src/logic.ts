// What the extension decides, kept free of the `vscode` module so that it is tested under plain Node.

/** Settings of the extension itself; the server refuses keys it does not know, so they never reach it. */
export function isExtensionOnly(key: string): boolean {
  return key === "enable" || key === "server" || key.startsWith("server.");
}

/** The server's setting names (camelCase, without `fimls.`) as contributed in package.json. */
export function serverSettingKeys(packageJson: { contributes: { configuration: { properties: object } } }): string[] {
  return Object.keys(packageJson.contributes.configuration.properties)
    .map((key) => key.replace(/^fimls\./, ""))
    .filter((key) => !isExtensionOnly(key));
}

export interface Inspection {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/**
 * Only what the user set, the most specific scope winning. Defaults are left to the server so that
 * its own (such as `$FIMLS_MODEL` for the model) apply and cannot be shadowed by a copy.
 */
export function explicitSettings(
  keys: readonly string[],
  inspect: (key: string) => Inspection | undefined,
): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const key of keys) {
    const seen = inspect(key);
    if (seen === undefined) continue;
    const value = seen.workspaceFolderValue ?? seen.workspaceValue ?? seen.globalValue;
    if (value !== undefined) settings[key] = value;
  }
  return settings;
}

export type ServerState = "starting" | "loading" | "ready" | "error" | "stopped";

export interface StatusView {
  text: string;
  tooltip: string;
  isError: boolean;
}

/** The status bar item for the server's `fimls/status` state and the user's on/off switch. */
export function statusView(state: ServerState, message: string, enabled: boolean): StatusView {
  const detail = message ? `: ${message}` : "";
  switch (state) {
    case "starting":
      return { text: "$(sync~spin) fimls", tooltip: "fimls: starting the server", isError: false };
    case "loading":
      return { text: "$(sync~spin) fimls", tooltip: `fimls: loading the model${detail}`, isError: false };
    case "error":
      return { text: "$(error) fimls", tooltip: `fimls failed${detail}. Click for the log.`, isError: true };
    case "stopped":
      return { text: "$(debug-stop) fimls", tooltip: `fimls: the server stopped${detail}. Click for the log.`, isError: true };
    case "ready":
      return enabled
        ? { text: "$(sparkle) fimls", tooltip: `fimls: ready${detail}. Click for the log.`, isError: false }
        : { text: "$(circle-slash) fimls", tooltip: "fimls: completions off (fimls: Toggle inline completions)", isError: false };
  }
}

/** `fimls/status` as sent by the server; anything unexpected reads as an error, not a crash. */
export function parseStatus(params: unknown): { state: ServerState; message: string } {
  if (typeof params === "object" && params !== null) {
    const { state, message } = params as { state?: unknown; message?: unknown };
    if (state === "loading" || state === "ready" || state === "error") {
      return { state, message: typeof message === "string" ? message : "" };
    }
  }
  return { state: "error", message: `unexpected fimls/status ${JSON.stringify(params)}` };
}

/** `fimls/stats` as readable lines for the output channel. */
export function formatStats(stats: Record<string, unknown>): string {
  const { settings, ...counters } = stats;
  const width = Math.max(0, ...Object.keys(counters).map((key) => key.length));
  const lines = Object.entries(counters).map(([key, value]) => `${key.padStart(width)}: ${JSON.stringify(value)}`);
  if (settings !== undefined) lines.push(`settings: ${JSON.stringify(settings, null, 2)}`);
  return lines.join("\n");
}
