import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

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
} from "../src/logic";

const packageJson = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8"));

test("server settings are the contributed ones without the extension's own", () => {
  const keys = serverSettingKeys(packageJson);
  assert.ok(keys.includes("model") && keys.includes("maxNewTokens") && keys.includes("debounceMinMs"));
  assert.ok(!keys.includes("enable") && !keys.some((key) => key.startsWith("server.")));
  assert.ok(keys.includes("serverUrl") && keys.includes("backend")); // the server backend's settings are the server's
});

test("only values the user set are sent, the most specific scope winning", () => {
  const scopes: Record<string, object> = {
    model: { globalValue: "a", workspaceValue: "b" },
    maxNewTokens: { globalValue: 32, workspaceFolderValue: 16, workspaceValue: 8 },
    ranker: {},
    offline: { workspaceValue: false },
  };
  const settings = explicitSettings(["model", "maxNewTokens", "ranker", "offline", "missing"], (key) => scopes[key]);
  assert.deepEqual(settings, { model: "b", maxNewTokens: 16, offline: false });
});

test("status bar follows the server's state and the on/off switch", () => {
  assert.match(statusView("loading", "m", true).text, /sync~spin/);
  assert.match(statusView("ready", "", true).text, /sparkle/);
  assert.match(statusView("ready", "", false).text, /circle-slash/);
  const failed = statusView("error", "model not found", true);
  assert.ok(failed.isError && failed.tooltip.includes("model not found"));
});

test("a malformed fimls/status is shown as an error instead of throwing", () => {
  assert.deepEqual(parseStatus({ state: "ready", message: "ok" }), { state: "ready", message: "ok" });
  assert.equal(parseStatus({ state: "bogus" }).state, "error");
  assert.equal(parseStatus(null).state, "error");
  assert.equal(parseStatus({ state: "loading", message: 3 }).message, "");
});

test("stats are printed one counter per line, settings last", () => {
  const text = formatStats({ requests: 3, accepted: 1, settings: { model: "m" } });
  const lines = text.split("\n");
  assert.equal(lines[0], "requests: 3");
  assert.equal(lines[1], "accepted: 1");
  assert.ok(text.endsWith('settings: {\n  "model": "m"\n}'));
});

test("--stdio is always passed, after the user's own arguments, whatever they hold", () => {
  assert.deepEqual(serverArgs([]), ["--stdio"]);
  assert.deepEqual(serverArgs(["--verbose"]), ["--verbose", "--stdio"]);
  assert.deepEqual(serverArgs(["--verbose", "--stdio"]), ["--verbose", "--stdio"]);
  assert.deepEqual(serverArgs(["--tcp", "--port", "2087", "--log-file", "/tmp/f.log"]), ["--log-file", "/tmp/f.log", "--stdio"]);
});

test("a failed start names the setting to change", () => {
  const message = startFailureMessage("fimls", new Error("spawn fimls ENOENT"));
  assert.match(message, /spawn fimls ENOENT/);
  assert.match(message, /fimls\.server\.command/);
});

test("the toggle writes to the scope that holds the value", () => {
  assert.equal(scopeHolding(undefined), "global");
  assert.equal(scopeHolding({ globalValue: true }), "global");
  assert.equal(scopeHolding({ globalValue: true, workspaceValue: false }), "workspace");
  assert.equal(scopeHolding({ workspaceValue: false, workspaceFolderValue: true }), "workspaceFolder");
});

// What vscode-languageclient 11's client does on dispose (lib/common/client.js, shutdown): it
// returns in the initial and stopped states and throws in `starting` and `startFailed`.
class ClientLike {
  state: "starting" | "startFailed" | "running" | "stopped";
  disposed = 0;
  constructor(state: ClientLike["state"]) {
    this.state = state;
  }
  async dispose(): Promise<void> {
    if (this.state === "starting" || this.state === "startFailed") {
      throw new Error(`Client is not running and can't be stopped. It's current state is: ${this.state}`);
    }
    this.disposed++;
    this.state = "stopped";
  }
}

test("a client whose start failed is stopped without throwing, and reported", async () => {
  const reports: string[] = [];
  await stopQuietly(new ClientLike("startFailed"), undefined, (m) => reports.push(m));
  assert.equal(reports.length, 1);
  assert.match(reports[0], /can't be stopped/);
});

test("a client still starting is stopped once its start has settled", async () => {
  const client = new ClientLike("starting");
  let settle: () => void = () => undefined;
  const starting = new Promise<void>((resolve) => (settle = resolve));
  const stopped = stopQuietly(client, starting, () => undefined);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(client.disposed, 0); // not while starting
  client.state = "running";
  settle();
  await stopped;
  assert.equal(client.disposed, 1);
});

test("restarts run one at a time and requests made meanwhile share one restart", async () => {
  const log: string[] = [];
  let cycles = 0;
  let release: () => void = () => undefined;
  const queue = new RestartQueue(async () => {
    const n = ++cycles;
    log.push(`start ${n}`);
    if (n === 1) await new Promise<void>((resolve) => (release = resolve));
    log.push(`end ${n}`);
  });
  const first = queue.restart();
  await new Promise((resolve) => setTimeout(resolve, 5));
  const second = queue.restart();
  const third = queue.restart();
  assert.equal(second, third); // coalesced
  release();
  await Promise.all([first, second, third]);
  assert.deepEqual(log, ["start 1", "end 1", "start 2", "end 2"]);
  assert.equal(cycles, 2);
  await queue.restart(); // and the queue keeps working after a failure-free run
  assert.equal(cycles, 3);
});

test("a restart that throws does not block the next one", async () => {
  let calls = 0;
  const queue = new RestartQueue(async () => {
    calls++;
    if (calls === 1) throw new Error("boom");
  });
  await assert.rejects(queue.restart(), /boom/);
  await queue.restart();
  assert.equal(calls, 2);
});

test("the documents served include the cells of Jupyter notebooks", () => {
  const filters: object[] = [...DOCUMENT_SELECTOR];
  assert.ok(filters.some((f) => JSON.stringify(f) === JSON.stringify({ scheme: "vscode-notebook-cell" })));
  assert.ok(filters.some((f) => JSON.stringify(f) === JSON.stringify({ notebook: { notebookType: "jupyter-notebook" } })));
  assert.ok(filters.some((f) => JSON.stringify(f) === JSON.stringify({ scheme: "file" })));
});
