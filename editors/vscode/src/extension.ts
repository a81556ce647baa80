// Wires VS Code to the fimls language server; every decision lives in logic.ts.
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";

import {
  DOCUMENT_SELECTOR,
  RestartQueue,
  explicitSettings,
  formatStats,
  parseStatus,
  scopeHolding,
  serverArgs,
  serverSettingKeys,
  startFailureMessage,
  statusView,
  stopQuietly,
  type ServerState,
} from "./logic";

let client: LanguageClient | undefined;
let starting: Promise<void> | undefined; // the client's start, while it may still be under way
let output: vscode.LogOutputChannel;
let statusItem: vscode.StatusBarItem;
let serverKeys: string[] = [];
let state: { state: ServerState; message: string } = { state: "starting", message: "" };

function config(scope?: vscode.ConfigurationScope): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("fimls", scope);
}

function enabled(scope?: vscode.ConfigurationScope): boolean {
  return config(scope).get<boolean>("enable", true);
}

/** What the user set, for the folder `scopeUri` names (folder settings win there) or the window. */
function userSettings(scopeUri?: string): Record<string, unknown> {
  const section = config(scopeUri ? vscode.Uri.parse(scopeUri) : undefined);
  return explicitSettings(serverKeys, (key) => section.inspect(key));
}

function showStatus(next: ServerState, message: string): void {
  state = { state: next, message };
  const view = statusView(next, message, enabled());
  statusItem.text = view.text;
  statusItem.tooltip = view.tooltip;
  statusItem.backgroundColor = view.isError ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
}

async function startClient(): Promise<void> {
  const command = config().get<string>("server.command", "fimls");
  const args = serverArgs(config().get<unknown[]>("server.args", []));
  const serverOptions: ServerOptions = { command, args };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [...DOCUMENT_SELECTOR],
    outputChannel: output,
    // No initializationOptions: the server asks for the settings (workspace/configuration, per
    // folder) before it indexes or loads anything, and a copy here would sit under every answer,
    // so that a setting the user removes would fall back to its value at start, not the default.
    middleware: {
      // Toggling off keeps the server (and its warm model) running; it only stops asking.
      provideInlineCompletionItems: (document, position, context, token, next) =>
        enabled(document.uri) ? next(document, position, context, token) : undefined,
      workspace: {
        // Only what the user set, per folder: a setting the user removes reverts to the default.
        configuration: (params, token, next) =>
          params.items.every((item) => item.section === "fimls")
            ? params.items.map((item) => userSettings(item.scopeUri))
            : next(params, token),
      },
    },
  };
  client = new LanguageClient("fimls", "fimls", serverOptions, clientOptions);
  client.onNotification("fimls/status", (params: unknown) => {
    const status = parseStatus(params);
    showStatus(status.state, status.message);
  });
  client.onDidChangeState((change) => {
    if (change.newState === 1 /* State.Stopped */ && state.state !== "error") showStatus("stopped", "");
  });
  showStatus("starting", "");
  starting = client.start();
  try {
    await starting;
  } catch (error) {
    const message = startFailureMessage(command, error);
    showStatus("error", message);
    output.error(message);
    void vscode.window.showErrorMessage(message, "Open Settings").then((choice) => {
      if (choice) void vscode.commands.executeCommand("workbench.action.openSettings", "fimls.server.command");
    });
  }
}

async function stopClient(): Promise<void> {
  const running = client;
  const start = starting;
  client = undefined;
  starting = undefined;
  await stopQuietly(running, start, (message) => output.warn(message));
}

// Restarts are serialized and coalesced: one client at a time, whatever the client's state.
const restarts = new RestartQueue(async () => {
  await stopClient();
  await startClient();
});

function restart(): Promise<void> {
  return restarts.restart();
}

const TARGETS = {
  workspaceFolder: vscode.ConfigurationTarget.WorkspaceFolder,
  workspace: vscode.ConfigurationTarget.Workspace,
  global: vscode.ConfigurationTarget.Global,
};

async function toggle(): Promise<void> {
  // Written where the value the user sees comes from, or a workspace value would hide the flip.
  const folder = vscode.window.activeTextEditor?.document.uri;
  const section = config(folder);
  await section.update("enable", !section.get<boolean>("enable", true), TARGETS[scopeHolding(section.inspect("enable"))]);
}

async function showStats(): Promise<void> {
  if (client === undefined || !client.isRunning()) {
    void vscode.window.showWarningMessage("fimls: the server is not running");
    return;
  }
  const stats = await client.sendRequest<Record<string, unknown>>("fimls/stats", {});
  output.appendLine(`fimls/stats at ${new Date().toISOString()}\n${formatStats(stats)}`);
  output.show(true);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  serverKeys = serverSettingKeys(context.extension.packageJSON);
  output = vscode.window.createOutputChannel("fimls", { log: true });
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusItem.command = "fimls.showOutput";
  statusItem.show();
  context.subscriptions.push(
    output,
    statusItem,
    vscode.commands.registerCommand("fimls.restart", restart),
    vscode.commands.registerCommand("fimls.toggle", toggle),
    vscode.commands.registerCommand("fimls.showStats", showStats),
    vscode.commands.registerCommand("fimls.showOutput", () => output.show(true)),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration("fimls")) return;
      if (event.affectsConfiguration("fimls.server")) {
        await restart();
      } else if (event.affectsConfiguration("fimls.enable")) {
        showStatus(state.state, state.message);
      } else if (client?.isRunning()) {
        // The server answers a change without settings by asking for them (workspace/configuration).
        await client.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
      }
    }),
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
}
