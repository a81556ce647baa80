"""The symbol index (what each language's scan finds) and the `symbols` ranker (which definition
of a name the receiver at the cursor means), on hand-written workspaces with known answers."""

from __future__ import annotations

import os

from conftest import wait_for
from fimls.context.builder import ContextBuilder
from fimls.context.symbol_scan import scan
from fimls.context.symbol_search import cursor_chain
from fimls.context.workspace import WorkspaceIndex
from fimls.settings import SECRET_GLOBS


def _found(path, text):
    return {(f.name, f.kind, f.container, f.type) for f in scan(path, text)}


def test_each_language_scan_finds_definitions_their_class_and_the_type_they_name():
    python = (
        "TIMEOUT = 5\n\nclass Client(BaseClient, mixins.Retrying):\n    retries: int = 3\n    transport: Transport\n\n"
        "    def __init__(self, url,\n                 pool) -> None:\n        self.session = Session(url)\n"
        "        self._pool: 'Pool' = make_pool()\n        local = 3\n\n    @property\n    def send(self, request) -> \"Response\":\n"
        "        return 1\n\nif TYPE_CHECKING:\n    def stub(): ...\n\ndef build_client(x) -> Optional[Client]:\n    return Client()\n"
    )
    found = _found("a.py", python)
    assert {
        ("TIMEOUT", "constant", None, None), ("Client", "class", None, "BaseClient,Retrying"),
        ("transport", "attribute", "Client", "Transport"), ("session", "attribute", "Client", "Session"),
        ("_pool", "attribute", "Client", "Pool"), ("send", "method", "Client", "Response"),
        ("build_client", "function", None, "Client"), ("__init__", "method", "Client", None),
        ("stub", "function", None, None),  # defined under a module-level `if`: still the module's
    } <= found
    assert "local" not in {name for name, *_ in found}

    typescript = (
        "export class Api extends Base {\n  private client: HttpClient;\n  constructor(opts) {\n    this.pool = new Pool(opts);\n  }\n"
        "  async get<T>(url: string): Promise<Response> {\n    if (url) { return fetch(url) }\n  }\n}\n"
        "export function makeApi(a: number): Api { return new Api() }\nexport const api = new Api();\n"
    )
    assert {
        ("Api", "class", None, "Base"), ("client", "attribute", "Api", "HttpClient"), ("pool", "attribute", "Api", "Pool"),
        ("get", "method", "Api", "Response"), ("makeApi", "function", None, "Api"), ("api", "constant", None, "Api"),
    } <= _found("a.ts", typescript)
    assert not {name for name, *_ in _found("a.ts", typescript)} & {"if", "fetch"}

    go = (
        "package x\n\ntype Client struct {\n\thttp *http.Client\n}\n\nfunc NewClient(url string) *Client {\n\treturn &Client{}\n}\n\n"
        "func (c *Client) Get(url string) (*Response, error) {\n\tif url == \"\" {\n\t}\n\treturn nil, nil\n}\n\nconst (\n\tA = 1\n)\n"
    )
    assert {
        ("Client", "class", None, None), ("http", "attribute", "Client", "Client"), ("NewClient", "function", None, "Client"),
        ("Get", "method", "Client", "Response"), ("A", "constant", None, None),
    } <= _found("a.go", go)

    rust = (
        "pub struct Pool {\n    conns: Vec<Conn>,\n}\nimpl Pool {\n    pub fn new(cfg: Config) -> Self {\n        Pool {}\n    }\n"
        "    fn get(&self) -> Option<&Conn> {\n        None\n    }\n}\npub const MAX: usize = 3;\n"
    )
    assert {
        ("Pool", "class", None, None), ("conns", "attribute", "Pool", "Conn"), ("new", "method", "Pool", "Pool"),
        ("get", "method", "Pool", "Conn"), ("MAX", "constant", None, None),
    } <= _found("a.rs", rust)

    java = (
        "package a;\npublic class Client extends Base {\n    private final HttpClient http;\n"
        "    public Response send(Request r) throws IOException {\n        return http.send(r);\n    }\n}\n"
    )
    assert {
        ("Client", "class", None, "Base"), ("http", "attribute", "Client", "HttpClient"), ("send", "method", "Client", "Response"),
    } <= _found("A.java", java)

    cpp = (
        "#define MAX 3\nclass Widget : public Base {\n  public:\n    Size draw(int x);\n};\n"
        "static int helper(int a) {\n    return call(a);\n}\nvoid Widget::draw(int x) {\n  if (x) {}\n}\n"
    )
    found = _found("a.cpp", cpp)
    assert {("MAX", "constant", None, None), ("Widget", "class", None, "Base"), ("draw", "method", "Widget", "Size"),
            ("helper", "function", None, None), ("draw", "method", "Widget", None)} <= found
    assert "call" not in {name for name, *_ in found}


def test_cursor_chain_reads_the_receivers_before_the_name():
    assert cursor_chain("x = self.client.send(", 21) == ([("self", False), ("client", False), ("send", False)], "(")
    assert cursor_chain("    make().run.", 15) == ([("make", True), ("run", False)], ".")
    assert cursor_chain("a = pool->conn::", 16) == ([("pool", False), ("conn", False)], ".")
    assert cursor_chain("f(x, ", 5) == ([], "")


def _builder(root):
    index = WorkspaceIndex(str(root), max_file_bytes=1_000_000, exclude_globs=SECRET_GLOBS)
    builder = ContextBuilder(index)
    builder.build()
    return builder


def _first(builder, current, text):
    candidates = builder.candidates("symbols", current, text, len(text), (0, 0))
    assert candidates, "no candidates"
    first = candidates[0]
    return first.path, first.text.splitlines()[0].strip()


def _write(root, files):
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def test_the_receiver_decides_which_definition_of_a_name_comes_first(tmp_path):
    # `send` and `get` are defined in several classes; only the receiver's type says which is meant.
    _write(tmp_path, {
        "app/http.py": "class Client:\n    def send(self, request):\n        return request\n\n    def get(self, url):\n        return url\n",
        "app/mail.py": "class Mailer:\n    def send(self, message):\n        return message\n",
        "app/pool.py": "class Pool:\n    def get(self, key):\n        return key\n\n\ndef make_pool() -> 'Pool':\n    return Pool()\n",
        "app/base.py": "class Service:\n    def helper_of_base(self):\n        return 1\n",
        "zzz/other.py": "class Other:\n    def send(self, x):\n        return x\n\n    def helper_of_base(self):\n        return 2\n",
        "app/__init__.py": "from .decorators import command as command\n",
        "app/decorators.py": "def command(name=None):\n    return name\n",
        "app/core.py": "class Group:\n    def command(self, *args):\n        return args\n",
        "app/examples/local.py": "class Client:\n    def local_one(self):\n        return 0\n",
    })
    builder = _builder(tmp_path)
    head = "from app.http import Client\nfrom app.mail import Mailer\nfrom app.pool import Pool, make_pool\nfrom app.base import Service\n\n"
    attribute = head + "class Api(Service):\n    def __init__(self):\n        self.mailer = Mailer()\n\n    def run(self):\n        self.mailer.send("
    assert _first(builder, "app/api.py", attribute) == ("app/mail.py", "def send(self, message):")
    parameter = head + "def fetch(client: Client, url):\n    return client.send("
    assert _first(builder, "app/api.py", parameter) == ("app/http.py", "def send(self, request):")
    returned = head + "def lookup(key):\n    return make_pool().get("
    assert _first(builder, "app/api.py", returned) == ("app/pool.py", "def get(self, key):")
    local = head + "def lookup(key):\n    pool = make_pool()\n    return pool.get("
    assert _first(builder, "app/api.py", local) == ("app/pool.py", "def get(self, key):")
    inherited = head + "class Api(Service):\n    def run(self):\n        return self.helper_of_base("
    assert _first(builder, "app/api.py", inherited) == ("app/base.py", "def helper_of_base(self):")
    module = "import app.pool as pools\n\n\ndef f():\n    return pools.make_pool("
    assert _first(builder, "app/api.py", module) == ("app/pool.py", "def make_pool() -> 'Pool':")
    parent = head + "class Api(Service):\n    def helper_of_base(self):\n        return super().helper_of_base("
    assert _first(builder, "app/api.py", parent) == ("app/base.py", "def helper_of_base(self):")
    from_parameter = head + "class Api:\n    def __init__(self, mailer: Mailer):\n        self.mailer = mailer\n\n    def run(self):\n        self.mailer.send("
    assert _first(builder, "app/api.py", from_parameter) == ("app/mail.py", "def send(self, message):")
    reexported = "import app\n\n\n@app.command("  # the package's __init__ takes it from app/decorators.py
    assert _first(builder, "main.py", reexported) == ("app/decorators.py", "def command(name=None):")
    # Two classes named Client; the import says which (the other is nearer the current file).
    imported = head + "def fetch():\n    return Client("
    assert _first(builder, "app/examples/use.py", imported) == ("app/http.py", "class Client:")
    after_dot = head + "def fetch(client: Client):\n    return client."
    assert _first(builder, "app/api.py", after_dot) == ("app/http.py", "class Client:")


def test_receivers_in_go_typescript_and_rust(tmp_path):
    # The files being typed in are on disk too, as an open document is indexed (their own fields
    # and struct types are read from the index).
    typed = {
        "srv/server.go": "package srv\n\ntype Server struct {\n\tclient *Client\n}\n\nfunc (s *Server) Run() {\n\ts.client.Do(",
        "web/page.ts": "import { Store } from './store';\n\nclass Page {\n  private store: Store;\n  load() {\n    return this.store.get(",
        "crate/src/main.rs": "use crate::queue::Queue;\n\nfn work(q: &Queue) -> u32 {\n    q.take(",
    }
    _write(tmp_path, {
        "srv/client.go": "package srv\n\ntype Client struct{}\n\nfunc (c *Client) Do(r string) error {\n\treturn nil\n}\n",
        "srv/cache.go": "package srv\n\ntype Cache struct{}\n\nfunc (c *Cache) Do(k string) error {\n\treturn nil\n}\n",
        "web/http.ts": "export class HttpClient {\n  get(url: string): string {\n    return url;\n  }\n}\n",
        "web/store.ts": "export class Store {\n  get(key: string): string {\n    return key;\n  }\n}\n",
        "crate/src/pool.rs": "pub struct Pool {}\nimpl Pool {\n    pub fn take(&self) -> u32 {\n        1\n    }\n}\n",
        "crate/src/queue.rs": "pub struct Queue {}\nimpl Queue {\n    pub fn take(&self) -> u32 {\n        2\n    }\n}\n",
        **typed,
    })
    builder = _builder(tmp_path)
    assert _first(builder, "srv/server.go", typed["srv/server.go"]) == ("srv/client.go", "func (c *Client) Do(r string) error {")
    assert _first(builder, "web/page.ts", typed["web/page.ts"]) == ("web/store.ts", "get(key: string): string {")
    assert _first(builder, "crate/src/main.rs", typed["crate/src/main.rs"]) == ("crate/src/queue.rs", "pub fn take(&self) -> u32 {")


def test_the_symbol_index_follows_real_file_events(tmp_path):
    _write(tmp_path, {"lib/a.py": "def existing():\n    return 1\n"})
    builder = _builder(tmp_path)
    builder.index.watch()
    try:
        (tmp_path / "lib" / "fresh.py").write_text("class Fresh:\n    def brand_new_method(self):\n        return 1\n")
        text = "def f(x):\n    return x.brand_new_method("

        def found():
            return [c.path for c in builder.candidates("symbols", "lib/use.py", text, len(text), (0, 0))]

        assert wait_for(lambda: found() == ["lib/fresh.py"])
        os.remove(tmp_path / "lib" / "fresh.py")
        assert wait_for(lambda: found() == [])
    finally:
        builder.index.stop()
