// TypeScript/JavaScript retrieval cases whose gold answers come from the TypeScript compiler's own
// language service (getDefinitionAtPosition), an analyser that shares nothing with fimls'
// resolution: `fimls eval-context make-cases --resolver typescript` runs this with node, the
// `typescript` package found through $TYPESCRIPT (a folder: `npm pack typescript`, unpacked).
//
// stdin: {"repo": "/abs/repo", "files": ["src/a.ts", ...], "max": 200, "seed": 0, "open": 3,
// "per_file": 8}; stdout: one JSON case per line, the same shape as bench/jedi_cases.py's.
"use strict";
const fs = require("fs");
const path = require("path");
const ts = require(process.env.TYPESCRIPT || "typescript");

const request = JSON.parse(fs.readFileSync(0, "utf8"));
const repo = request.repo;
const files = request.files;
const known = new Set(files);

// mulberry32: a seeded generator, so the same request gives the same cases.
let state = request.seed >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function shuffle(items) {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}
function sample(items, count) {
  return shuffle(items.slice()).slice(0, count).sort();
}

const absolute = files.map((f) => path.join(repo, f));
const host = {
  getScriptFileNames: () => absolute,
  getScriptVersion: () => "1",
  getScriptSnapshot: (f) => (fs.existsSync(f) ? ts.ScriptSnapshot.fromString(fs.readFileSync(f, "utf8")) : undefined),
  getCurrentDirectory: () => repo,
  getCompilationSettings: () => ({ allowJs: true, target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler, skipLibCheck: true }),
  getDefaultLibFileName: (options) => ts.getDefaultLibFilePath(options),
  fileExists: ts.sys.fileExists,
  readFile: ts.sys.readFile,
  readDirectory: ts.sys.readDirectory,
  directoryExists: ts.sys.directoryExists,
  getDirectories: ts.sys.getDirectories,
};
const service = ts.createLanguageService(host, ts.createDocumentRegistry());
const program = service.getProgram();
const checker = program.getTypeChecker();

function importedHere(identifier, source) {
  const symbol = checker.getSymbolAtLocation(identifier);
  const declaration = symbol && symbol.declarations && symbol.declarations[0];
  return !!declaration && declaration.getSourceFile() === source &&
    (ts.isImportSpecifier(declaration) || ts.isImportClause(declaration) || ts.isNamespaceImport(declaration));
}

// Uses followed by `(` or `.`: a property name (`inferred`) or a bare name bound by an import of
// the file (`imported`); outside import and export declarations.
function sites(source) {
  const found = [];
  const text = source.text;
  function visit(node) {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return;
    if (ts.isIdentifier(node)) {
      const next = text[node.end];
      if (next === "(" || next === ".") {
        const parent = node.parent;
        found.push([node, parent && ts.isPropertyAccessExpression(parent) && parent.name === node ? "inferred" : "bare"]);
      }
    }
    ts.forEachChild(node, visit);
  }
  visit(source);
  return found;
}

const order = shuffle(files.slice());
const cases = [];
for (const file of order) {
  if (cases.length >= request.max) break;
  const absoluteFile = path.join(repo, file);
  const source = program.getSourceFile(absoluteFile);
  if (!source) continue;
  let kept = 0;
  for (const [node, position] of shuffle(sites(source))) {
    if (kept >= request.per_file) break;
    let kind = position;
    if (position === "bare") {
      if (!importedHere(node, source)) continue;
      kind = "imported";
    }
    const definitions = (service.getDefinitionAtPosition(absoluteFile, node.getStart()) || [])
      .map((d) => [path.relative(repo, d.fileName).split(path.sep).join("/"), d])
      .filter(([relative]) => known.has(relative) && relative !== file);
    if (definitions.length !== 1) continue;
    const [goldPath, definition] = definitions[0];
    const goldSource = program.getSourceFile(path.join(repo, goldPath));
    const goldLine = goldSource.getLineAndCharacterOfPosition(definition.textSpan.start).line;
    const others = files.filter((f) => f !== goldPath && f !== file);
    cases.push({ file, offset: node.end + 1, name: node.text, kind, resolver: "typescript",
      gold_path: goldPath, gold_start: goldLine, gold_end: goldLine + 1, open_files: sample(others, request.open) });
    kept += 1;
  }
}
for (const c of cases.slice(0, request.max)) process.stdout.write(JSON.stringify(c) + "\n");
