import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { explicitSettings, formatStats, parseStatus, serverSettingKeys, statusView } from "../src/logic";

const packageJson = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8"));

test("server settings are the contributed ones without the extension's own", () => {
  const keys = serverSettingKeys(packageJson);
  assert.ok(keys.includes("model") && keys.includes("maxNewTokens") && keys.includes("debounceMinMs"));
  assert.ok(!keys.includes("enable") && !keys.some((key) => key.startsWith("server")));
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
