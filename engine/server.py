"""Completions from a team's inference server (vLLM, SGLang, llama.cpp's llama-server, TGI, Ollama)
over the OpenAI-compatible `POST /v1/completions`, streamed.

The prompt is fimls' own: rendered with the model's FIM template and tokenizer (loaded without the
weights), exactly as the in-process engine renders it, and sent as token ids where the server
takes them (vLLM, SGLang, llama-server: exact budgets, and FIM marker strings written in a source
file stay text). A server that wants a string (TGI, Ollama) gets the text, with marker strings in
the source neutralised so that it cannot read them as control tokens; which one a server takes is
found out once and remembered. Stop rules run on the stream: when one fires the stream is closed,
and the servers abort a request whose client went away. A superseded request closes its stream at
once. Every failure is one sentence saying what went wrong and where (docs/facts.md §4).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from fimls.engine.results import Completion, Generation
from fimls.engine.fim import FimTemplate
from fimls.engine.stops import StopRules
from fimls.engine.tokenizer import CodeTokenizer
from fimls.prompt import PromptParts

log = logging.getLogger(__name__)

# Zero-width space: cuts a control-token string written in a source file so that a server
# tokenizing the prompt as text does not find the control token in it.
NEUTRAL = "\u200b"
MOST_STOP_STRINGS = 4  # OpenAI's limit, and what vLLM, TGI and llama-server accept


class ServerError(RuntimeError):
    """The inference server failed a completion; the message is one sentence for the user."""


@dataclass(frozen=True)
class ServerOptions:
    url: str  # the server's base URL, with or without `/v1`
    model: str = ""  # empty: the first model the server lists
    api_key_env: str = ""  # the name of an environment variable holding the API key
    timeout_s: float = 20.0  # the most one completion may take, start to end
    stall_s: float = 5.0  # the most the stream may stay silent
    connect_s: float = 3.0


class ServerBackend:
    """The engine interface (`window`, `count_tokens`, `encode`, `render`, `complete`) over HTTP."""

    def __init__(
        self, tokenizer: CodeTokenizer, options: ServerOptions, *, name: str, window: int, layout: str = "line-in-middle",
        transport=None,
    ):
        """`transport`: an httpx transport other than TCP (the local daemon's Unix socket)."""
        import httpx

        self.tokenizer = tokenizer
        self.options = options
        self.name = name
        self.layout = layout
        self.speculative_tokens = 0  # the server's business
        self.max_cached_tokens = window
        self.template = FimTemplate.from_tokenizer(tokenizer, name)
        self._window = window
        base = options.url.rstrip("/")
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base
        headers = {}
        key = os.environ.get(options.api_key_env) if options.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        # trust_env: the standard proxy variables (HTTPS_PROXY, NO_PROXY) and a custom CA bundle
        # (SSL_CERT_FILE, SSL_CERT_DIR), as corporate networks need.
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, trust_env=transport is None, transport=transport,
            timeout=httpx.Timeout(options.timeout_s, connect=options.connect_s, read=options.stall_s),
        )
        self.model = options.model
        self.accepts_token_ids: bool | None = None
        # A server knows nothing of fimls' stop rules: they run on the stream, and closing it stops
        # the generation.
        self.hangs_up_on_rules = True
        self.stop_strings = self._stop_strings()
        self._lock = threading.Lock()

    # -- what the request path uses, as with the in-process engine ------------------------------

    @property
    def window(self) -> int:
        return self._window

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def render(self, parts: PromptParts) -> list[int]:
        return self.template.render(parts, self.encode, self.layout)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids)

    def describe(self) -> str:
        return f"{self.name} through {self.base_url} (model {self.model or 'not yet known'})"

    def warm_up(self) -> None:
        """Find the model and check the server answers; a failure says what and where."""
        self._model()

    def close(self) -> None:
        self.client.close()

    def complete(
        self,
        parts: PromptParts,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        cancelled: Callable[[], bool] = lambda: False,
        stop_ids: frozenset[int] | None = None,
        rules: StopRules | None = None,
        candidates: int = 1,
        session: str = "",
    ) -> Completion:
        """One completion, streamed. `candidates` and `session` are for backends that keep
        alternatives and per-document caches (a server answers one, and caches prefixes itself)."""
        rendering = time.perf_counter()
        prompt = self.render(parts)
        render_s = time.perf_counter() - rendering
        self._check_window(prompt, max_new_tokens)
        extensions = self._extensions(session, rules, candidates, temperature)
        with self._lock:
            streamed = self._stream(prompt, parts, max_new_tokens, temperature, top_p, cancelled, rules, extensions)
        return self._completion(streamed, rules, len(prompt), render_s)

    def _check_window(self, prompt: list[int], max_new_tokens: int) -> None:
        if len(prompt) + max_new_tokens + 1 > self.window:
            raise ValueError(
                f"prompt of {len(prompt)} tokens plus {max_new_tokens} new tokens exceeds the window of "
                f"{self.window}; lower the prefix/suffix budgets"
            )

    def _extensions(self, session: str, rules: StopRules | None, candidates: int, temperature: float) -> dict:
        """Request fields beyond OpenAI's; a team's server gets none."""
        return {}

    def _completion(self, streamed: "Streamed", rules: StopRules | None, prompt_tokens: int, render_s: float) -> Completion:
        def cut(text: str) -> str:
            at = rules.cut(text) if rules is not None else None
            return text if at is None else text[:at]

        timings = streamed.timings
        text = cut(streamed.text)
        generation = Generation(
            self.encode(text), streamed.stop_reason, prompt_tokens, timings.get("cached", 0), timings["first_s"],
            timings["total_s"],
        )
        alternatives = tuple(
            Completion(cut(alternative), Generation(self.encode(cut(alternative)), "eos", prompt_tokens, prompt_tokens, 0.0, 0.0))
            for alternative in streamed.alternatives
        )
        # The time between the request and its answer beyond the other side's own model time, where
        # it says that (the daemon does): what the hop costs.
        transport_s = timings["total_s"] - timings["model_s"] if "model_s" in timings else None
        return Completion(text, generation, render_s, alternatives, transport_s)

    # -- the protocol ---------------------------------------------------------------------------

    def _stop_strings(self) -> list[str]:
        """The template's end tokens, as strings the server stops at (EOS it knows itself)."""
        strings = []
        for token_id in sorted(self.template.stop_ids):
            if token_id == self.tokenizer.eos_id:
                continue
            token = self.tokenizer.hf.convert_ids_to_tokens(token_id)
            if token and len(token) > 1:
                strings.append(token)
        return strings[:MOST_STOP_STRINGS]

    def _where(self) -> str:
        return f"the inference server at {self.base_url}"

    def _model(self) -> str:
        if self.model:
            return self.model
        response = self._request("GET", "/v1/models")
        listed = response.json()
        entries = listed.get("data") or listed.get("models") or []
        names = [entry.get("id") or entry.get("model") or entry.get("name") for entry in entries if isinstance(entry, dict)]
        names = [name for name in names if name]
        if not names:
            raise ServerError(f"{self._where()} lists no models at /v1/models; set serverModel.")
        self.model = names[0]
        return self.model

    def _request(self, method: str, path: str, **kwargs):
        import httpx

        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServerError(self._failure(error)) from None
        self._check_status(response)
        return response

    def _check_status(self, response, body: str | None = None) -> None:
        status = response.status_code
        if status < 400:
            return
        if body is None:
            try:
                body = response.read().decode("utf-8", "replace")
            except Exception:
                body = ""
        detail = _error_detail(body)
        if status in (401, 403):
            raise ServerError(
                f"{self._where()} refused the request ({status} {detail}); set serverApiKeyEnv to the name of an "
                f"environment variable holding a valid API key."
            )
        if status == 404:
            raise ServerError(
                f"{self._where()} has no model '{self.model}' or no /v1/completions ({status} {detail}); "
                f"set serverModel to a model it serves (GET /v1/models lists them)."
            )
        if status == 429 or status >= 500:
            raise ServerError(f"{self._where()} is overloaded or failing ({status} {detail}); fimls will try again.")
        raise ServerError(f"{self._where()} refused the completion ({status} {detail}).")

    def _failure(self, error) -> str:
        import httpx

        host = urlsplit(self.base_url).hostname or self.base_url
        if isinstance(error, httpx.ConnectError):
            reason = str(error)
            if "Name or service not known" in reason or "nodename nor servname" in reason or "getaddrinfo" in reason:
                return f"cannot resolve the inference server's host '{host}' ({self.base_url}); check serverUrl."
            return f"cannot reach {self._where()} ({reason or 'connection refused'}); is it running?"
        if isinstance(error, httpx.ConnectTimeout):
            return f"{self._where()} did not accept a connection within {self.options.connect_s:g}s."
        if isinstance(error, httpx.ReadTimeout):
            return f"{self._where()} stopped sending for {self.options.stall_s:g}s in the middle of a completion."
        if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError)):
            return f"{self._where()} closed the connection in the middle of a completion ({type(error).__name__})."
        return f"{self._where()} failed: {type(error).__name__}: {error}"

    def _payload(self, prompt: list[int], parts: PromptParts, max_new_tokens: int, temperature: float, top_p: float) -> dict:
        payload: dict[str, Any] = {
            "model": self._model(),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": 0,
            "stream": True,
            "stop": self.stop_strings,
        }
        if self.accepts_token_ids is False:
            payload["prompt"] = self._text_prompt(parts)
        else:
            payload["prompt"] = prompt
        return payload

    def _text_prompt(self, parts: PromptParts) -> str:
        """The prompt as text for a server that tokenizes it: the template's markers as they are,
        the same strings written in the source cut by a zero-width space."""
        def neutral(text: str) -> str:
            for marker in self.tokenizer.control_strings:
                text = text.replace(marker, marker[0] + NEUTRAL + marker[1:])
            return text

        begin, hole, end = (self.tokenizer.hf.convert_ids_to_tokens(i) for i in (self.template.begin_id, self.template.hole_id, self.template.end_id))
        head, typed = parts.prefix, ""
        if self.layout == "line-in-middle":
            line_start = parts.prefix.rfind("\n") + 1
            head, typed = parts.prefix[:line_start], parts.prefix[line_start:]
        body = "".join(neutral(s.text) for s in parts.snippets) + neutral(parts.header) + neutral(head)
        return f"{begin}{body}{hole}{neutral(parts.suffix)}{end}{neutral(typed)}"

    @contextmanager
    def _post_stream(self, payload: dict):
        """The response to a completion request, its body not yet read; `hang_up()` on it closes
        the connection from another thread. Failures are httpx's exceptions."""
        with self.client.stream("POST", "/v1/completions", json=payload) as response:
            response.hang_up = lambda: _hang_up(response)
            yield response

    def _open_stream(self, payload: dict):
        """`_post_stream` entered, sent once more on a new connection where the server closed the
        one kept alive as the request arrived (no response at all: nothing was generated).
        llama-server does this to about one keystroke in seven on a 2-core CPU."""
        import httpx

        try:
            context = self._post_stream(payload)
            return context, context.__enter__()
        except httpx.RemoteProtocolError as error:
            log.debug("%s closed a kept-alive connection (%s); sending again", self.base_url, error)
        context = self._post_stream(payload)
        return context, context.__enter__()

    def _stream(self, prompt, parts, max_new_tokens, temperature, top_p, cancelled, rules, extensions) -> "Streamed":
        import httpx

        started = time.perf_counter()
        deadline = started + self.options.timeout_s
        payload = self._payload(prompt, parts, max_new_tokens, temperature, top_p) | extensions
        try:
            response_context, response = self._open_stream(payload)
        except httpx.HTTPError as error:
            raise ServerError(self._failure(error)) from None
        on_cancel = getattr(cancelled, "on_cancel", None)
        if on_cancel is not None:
            on_cancel(response.hang_up)  # a superseded request closes its stream at once
        text, stop_reason, timings, first_s = "", None, {}, None
        alternatives: dict[int, str] = {}  # choices after the first (a backend asked for `n` > 1)
        ended = False  # the server said the completion is over ([DONE] or a finish_reason)
        try:
            if response.status_code in (400, 422) and self.accepts_token_ids is None and isinstance(payload["prompt"], list):
                body = response.read().decode("utf-8", "replace")
                response_context.__exit__(None, None, None)
                log.info("%s takes no token-id prompts (%s): sending text", self.base_url, _error_detail(body))
                self.accepts_token_ids = False
                return self._stream(prompt, parts, max_new_tokens, temperature, top_p, cancelled, rules, extensions)
            self._check_status(response)
            lines = response.iter_lines()
            if response.headers.get("content-type", "").startswith("application/json"):
                # A whole answer (a server that does not stream, or a client that did not ask):
                # one event, then the end. Newlines in JSON outside strings are only white space.
                lines = iter(["data: " + response.read().decode("utf-8", "replace").replace("\n", " "), "data: [DONE]"])
            for line in lines:
                if cancelled():
                    stop_reason = "cancelled"
                    break
                if time.perf_counter() > deadline:
                    raise ServerError(f"{self._where()} took longer than {self.options.timeout_s:g}s for one completion.")
                if not line or line.startswith(":"):
                    continue
                if not line.startswith("data:"):
                    raise ServerError(f"{self._where()} sent a malformed stream (a line that is not an SSE event).")
                data = line[5:].strip()
                if data == "[DONE]":
                    ended = True
                    for _ in lines:  # the response's end, read: the connection goes back to the pool
                        pass
                    break
                try:
                    event = json.loads(data)
                    choices = [(int(choice.get("index") or 0), choice) for choice in event.get("choices") or []]
                except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                    raise ServerError(f"{self._where()} sent a malformed stream event.") from None
                if isinstance(event.get("error"), (dict, str)):  # vLLM and others report late failures in the stream
                    raise ServerError(f"{self._where()} failed the completion: {_error_detail(json.dumps(event))}.")
                timings.update(_cache_figures(event))
                for index, choice in choices:
                    if index > 0:
                        alternatives[index] = alternatives.get(index, "") + (choice.get("text") or "")
                        continue
                    piece = choice.get("text") or ""
                    if piece and first_s is None:
                        first_s = time.perf_counter() - started
                    text += piece
                    if isinstance(choice.get("fimls_text"), str):  # the whole text, as the engine made it
                        text = choice["fimls_text"]
                    if choice.get("finish_reason"):
                        stop_reason = _STOP_REASONS.get(choice["finish_reason"], "length")
                        ended = True
                if self.hangs_up_on_rules and rules is not None and rules.cut(text) is not None:
                    stop_reason = "rule"  # closing the stream makes the server stop generating
                    break
            if stop_reason is None and cancelled():
                stop_reason = "cancelled"  # we hung up: the stream ended where we cut it
            if stop_reason is None and not ended:
                # A close-delimited stream that just stops: the server went away mid-completion.
                raise ServerError(f"{self._where()} closed the connection in the middle of a completion (no end of stream).")
            if self.accepts_token_ids is None and isinstance(payload["prompt"], list):
                self.accepts_token_ids = True
        except httpx.HTTPError as error:
            if cancelled():
                stop_reason = "cancelled"
            else:
                raise ServerError(self._failure(error)) from None
        finally:
            response_context.__exit__(None, None, None)
        total = time.perf_counter() - started
        timings.update(first_s=first_s if first_s is not None else total, total_s=total)
        return Streamed(text, stop_reason or "length", timings, [alternatives[i] for i in sorted(alternatives)])


@dataclass
class Streamed:
    text: str
    stop_reason: str
    timings: dict  # cached (prompt tokens served from cache), first_s, total_s, and what else the server said
    alternatives: list[str]


# OpenAI's finish reasons, and fimls' own where a daemon of ours says more.
_STOP_REASONS = {"stop": "eos", "length": "length", "eos": "eos", "rule": "rule", "cancelled": "cancelled"}


def _hang_up(response) -> None:
    """Close the connection under `response` from another thread: shutting the socket down wakes
    the read that waits for the next chunk (closing the response alone would wait for it)."""
    import socket

    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _error_detail(body: str) -> str:
    """A short reason from an error body (OpenAI-style `{"error": {"message": ...}}` or text)."""
    try:
        parsed = json.loads(body)
        error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        message = error.get("message") if isinstance(error, dict) else error
        body = str(message or parsed)
    except ValueError:
        pass
    body = " ".join(body.split())
    return body[:160]


def _cache_figures(event: dict) -> dict:
    """Prompt tokens the server served from its prefix cache, where it says so: llama-server's
    `timings.cache_n`, OpenAI's `usage.prompt_tokens_details.cached_tokens` (vLLM)."""
    figures = {}
    timings = event.get("timings")
    if isinstance(timings, dict):
        if "cache_n" in timings:
            figures["cached"] = int(timings["cache_n"])
        if "prompt_n" in timings:
            figures["prompt_n"] = int(timings["prompt_n"])
        if "fimls_model_s" in timings:
            figures["model_s"] = float(timings["fimls_model_s"])
        if "fimls_daemon_s" in timings:
            figures["daemon_s"] = float(timings["fimls_daemon_s"])
    usage = event.get("usage")
    if isinstance(usage, dict):
        details = usage.get("prompt_tokens_details") or {}
        if isinstance(details, dict) and details.get("cached_tokens") is not None:
            figures["cached"] = int(details["cached_tokens"])
    return figures
