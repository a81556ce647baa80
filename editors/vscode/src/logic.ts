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

/**
 * The server's arguments: the user's extra ones, then `--stdio`, which is always passed (without
 * it the server prints its help and exits, and the client restarts it in a loop). Transport
 * arguments in the user's list are dropped.
 */
export function serverArgs(userArgs: readonly unknown[]): string[] {
  const extra: string[] = [];
  for (let i = 0; i < userArgs.length; i++) {
    const arg = userArgs[i];
    if (typeof arg !== "string" || arg === "--stdio" || arg === "--tcp") continue;
    if (arg === "--port") {
      i++; // and its value
      continue;
    }
    extra.push(arg);
  }
  return [...extra, "--stdio"];
}

/** One sentence for a server that would not start, naming the setting that fixes it. */
export function startFailureMessage(command: string, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  return `fimls: could not start the server \`${command}\` (${reason}). Set fimls.server.command to the fimls executable (an absolute path if it is not on PATH).`;
}

/** Where the user's value of a setting lives, so a command that flips it writes there. */
export type Scope = "workspaceFolder" | "workspace" | "global";

export function scopeHolding(seen: Inspection | undefined): Scope {
  if (seen?.workspaceFolderValue !== undefined) return "workspaceFolder";
  if (seen?.workspaceValue !== undefined) return "workspace";
  return "global";
}

/** A client that can be shut down; vscode-languageclient's `dispose` throws unless it is running. */
export interface Disposable {
  dispose(timeout?: number): Promise<void>;
}

/**
 * Stop a client in whatever state it is: wait for a start still under way (a client cannot be
 * stopped while starting), then dispose it, and report rather than throw when it never ran (a
 * failed start leaves it in `startFailed`, where `dispose` throws).
 */
export async function stopQuietly(
  client: Disposable | undefined,
  starting: Promise<unknown> | undefined,
  report: (message: string) => void,
): Promise<void> {
  if (client === undefined) return;
  if (starting !== undefined) await starting.catch(() => undefined);
  try {
    await client.dispose(2000);
  } catch (error) {
    report(`the previous server did not stop cleanly: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Restarts one at a time: a restart asked for while one runs is queued, and any number asked for
 * meanwhile share that one queued restart (two configuration events close together start one
 * client, not two).
 */
export class RestartQueue {
  private running: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;

  constructor(private readonly cycle: () => Promise<void>) {}

  restart(): Promise<void> {
    if (this.queued !== undefined) return this.queued;
    const next = this.running.then(async () => {
      this.queued = undefined;
      await this.cycle();
    });
    this.queued = next;
    this.running = next.catch(() => undefined);
    return next;
  }
}

/**
 * The documents the extension serves: files on disk, unsaved files, and the cells of Jupyter
 * notebooks (their scheme is `vscode-notebook-cell`; the server syncs the notebooks themselves
 * through notebookDocument/* and shows a cell the notebook around it).
 */
export const DOCUMENT_SELECTOR = [
  { scheme: "file" },
  { scheme: "untitled" },
  { scheme: "vscode-notebook-cell" },
  { notebook: { notebookType: "jupyter-notebook" } },
] as const;
