"""Languages DeepSeek-Coder knows, by file name, and how each writes a line comment."""

from __future__ import annotations

from pathlib import PurePosixPath

# (line comment opener, closer) by language; the closer is empty for line comments.
_COMMENTS = {
    "python": ("#", ""), "ruby": ("#", ""), "shell": ("#", ""), "perl": ("#", ""), "r": ("#", ""),
    "yaml": ("#", ""), "toml": ("#", ""), "dockerfile": ("#", ""), "makefile": ("#", ""),
    "elixir": ("#", ""), "julia": ("#", ""), "powershell": ("#", ""), "cmake": ("#", ""),
    "javascript": ("//", ""), "typescript": ("//", ""), "go": ("//", ""), "rust": ("//", ""),
    "java": ("//", ""), "c": ("//", ""), "cpp": ("//", ""), "csharp": ("//", ""), "kotlin": ("//", ""),
    "scala": ("//", ""), "swift": ("//", ""), "dart": ("//", ""), "php": ("//", ""), "zig": ("//", ""),
    "protobuf": ("//", ""), "solidity": ("//", ""), "groovy": ("//", ""), "verilog": ("//", ""),
    "sql": ("--", ""), "lua": ("--", ""), "haskell": ("--", ""), "ada": ("--", ""), "vhdl": ("--", ""),
    "lisp": (";", ""), "clojure": (";", ""), "scheme": (";", ""), "racket": (";", ""),
    "erlang": ("%", ""), "tex": ("%", ""), "matlab": ("%", ""), "prolog": ("%", ""),
    "fortran": ("!", ""), "vim": ('"', ""), "ocaml": ("(*", " *)"), "pascal": ("//", ""),
    "html": ("<!--", " -->"), "xml": ("<!--", " -->"), "vue": ("<!--", " -->"), "markdown": ("<!--", " -->"),
    "css": ("/*", " */"), "scss": ("//", ""), "less": ("//", ""),
}

_BY_SUFFIX = {
    ".py": "python", ".pyi": "python", ".rb": "ruby", ".sh": "shell", ".bash": "shell", ".zsh": "shell",
    ".pl": "perl", ".pm": "perl", ".r": "r", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml",
    ".ex": "elixir", ".exs": "elixir", ".jl": "julia", ".ps1": "powershell", ".cmake": "cmake",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".go": "go", ".rs": "rust", ".java": "java", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp",
    ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp", ".cs": "csharp", ".kt": "kotlin",
    ".kts": "kotlin", ".scala": "scala", ".swift": "swift", ".dart": "dart", ".php": "php", ".zig": "zig",
    ".proto": "protobuf", ".sol": "solidity", ".groovy": "groovy", ".gradle": "groovy", ".v": "verilog",
    ".sv": "verilog", ".sql": "sql", ".lua": "lua", ".hs": "haskell", ".adb": "ada", ".ads": "ada",
    ".vhd": "vhdl", ".vhdl": "vhdl", ".lisp": "lisp", ".el": "lisp", ".clj": "clojure", ".scm": "scheme",
    ".rkt": "racket", ".erl": "erlang", ".tex": "tex", ".m": "matlab", ".f90": "fortran", ".f": "fortran",
    ".vim": "vim", ".ml": "ocaml", ".mli": "ocaml", ".pas": "pascal", ".html": "html", ".htm": "html",
    ".xml": "xml", ".vue": "vue", ".md": "markdown", ".css": "css", ".scss": "scss", ".less": "less",
}
_BY_NAME = {"Dockerfile": "dockerfile", "Makefile": "makefile", "CMakeLists.txt": "cmake"}


def language_of(path: str) -> str | None:
    pure = PurePosixPath(path.replace("\\", "/"))
    return _BY_NAME.get(pure.name) or _BY_SUFFIX.get(pure.suffix.lower())


def path_comment(path: str) -> str:
    """The first line DeepSeek-Coder saw for every file it was trained on: its path as a comment
    (`#utils.py`), ending in a newline. Unknown languages get `#`, as in the paper's examples."""
    opener, closer = _COMMENTS.get(language_of(path) or "", ("#", ""))
    return f"{opener}{path}{closer}\n"


def line_comment(language: str) -> str:
    """How `language` (a name above, or an LSP language id such as `python`, `r` or `julia`)
    opens a line comment; `#` when it is not known."""
    opener, closer = _COMMENTS.get(language, ("#", ""))
    return opener if not closer else "#"
