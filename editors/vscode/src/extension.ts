// Wires VS Code to the fimls language server; every decision lives in logic.ts.
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";

import { explicitSettings, formatStats, parseStatus, serverSettingKeys, statusView, type ServerState } from "./logic";

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let statusItem: vscode.StatusBarItem;
let serverKeys: string[] = [];
let state: { state: ServerState; message: string } = { state: "starting", message: "" };

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("fimls");
}

function enabled(): boolean {
  return config().get<boolean>("enable", true);
}

function userSettings(): Record<string, unknown> {
  const section = config();
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
  const args = config().get<string[]>("server.args", ["--stdio"]);
  const serverOptions: ServerOptions = { command, args };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: output,
    initializationOptions: userSettings(),
    middleware: {
      // Toggling off keeps the server (and its warm model) running; it only stops asking.
      provideInlineCompletionItems: (document, position, context, token, next) =>
        enabled() ? next(document, position, context, token) : undefined,
      workspace: {
        configuration: (params, token, next) =>
          params.items.every((item) => item.section === "fimls")
            ? params.items.map(() => userSettings())
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
  try {
    await client.start();
  } catch (error) {
    showStatus("error", `could not start \`${command}\` (${error}); set fimls.server.command`);
  }
}

async function stopClient(): Promise<void> {
  const running = client;
  client = undefined;
  if (running !== undefined) await running.dispose();
}

async function restart(): Promise<void> {
  await stopClient();
  await startClient();
}

async function toggle(): Promise<void> {
  await config().update("enable", !enabled(), vscode.ConfigurationTarget.Global);
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
