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
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from fimls.contract import (
    BackendError,
    Completion,
    CompletionRequest,
    Generation,
    ModelUnavailable,
    PromptParts,
    StateListener,
    Tuning,
)
from fimls.engine.backends.rendering import PromptRenderer, check_fits
from fimls.engine.model.checkpoint import load_tokenizer_and_window
from fimls.engine.model.tokenizer import CodeTokenizer
from fimls.stops import StopRules

log = logging.getLogger(__name__)

# Zero-width space: cuts a control-token string written in a source file so that a server
# tokenizing the prompt as text does not find the control token in it.
NEUTRAL = "\u200b"
MOST_STOP_STRINGS = 4  # OpenAI's limit, and what vLLM, TGI and llama-server accept


class ServerError(BackendError):
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
    """`backend: server`: the `Backend` interface over a team's server's HTTP."""

    def __init__(self, tokenizer: CodeTokenizer, options: ServerOptions, *, name: str, window: int, layout: str = "line-in-middle"):
        self.options = options
        self.name = name
        self.renderer = PromptRenderer(tokenizer, name, layout)
        self.tokenizer, self.template = tokenizer, self.renderer.template
        self.problem: str | None = None
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
            base_url=self.base_url, headers=headers, trust_env=True,
            timeout=httpx.Timeout(options.timeout_s, connect=options.connect_s, read=options.stall_s),
        )
        self.model = options.model
        self.accepts_token_ids: bool | None = None
        self.stop_strings = self._stop_strings()
        self._lock = threading.Lock()

    # -- the Backend interface ------------------------------------------------------------------

    @property
    def window(self) -> int:
        return self._window

    @property
    def layout(self) -> str:
        return self.renderer.layout

    def count_tokens(self, text: str) -> int:
        return self.renderer.count_tokens(text)

    def render(self, parts: PromptParts) -> list[int]:
        return self.renderer.render(parts)

    def encode(self, text: str) -> list[int]:
        return self.renderer.encode(text)

    def tune(self, tuning: Tuning) -> None:
        """The layout is fimls' (the prompt is rendered here); the draft length and the cache's size
        are the server's own settings, which a client cannot change."""
        self.renderer.layout = tuning.layout

    def watch(self, on_state: StateListener) -> None:
        """A server's state is learnt from its answers, on the request path: nothing to tell."""

    def describe(self) -> str:
        return f"{self.name} through {self.base_url} (model {self.model or 'not yet known'})"

    def warm_up(self) -> None:
        """Find the model and check the server answers; a failure says what and where."""
        self._model()

    def close(self) -> None:
        self.client.close()

    def complete(self, request: CompletionRequest) -> Completion:
        """One completion, streamed; the server answers one candidate, and caches prefixes itself."""
        rendering = time.perf_counter()
        prompt = self.renderer.render(request.parts)
        render_s = time.perf_counter() - rendering
        check_fits(prompt, request.max_new_tokens, self.window)
        with self._lock:
            streamed = self._stream(prompt, request)
        return self._completion(streamed, request.rules, len(prompt), render_s)

    def _completion(self, streamed: "Streamed", rules: StopRules | None, prompt_tokens: int, render_s: float) -> Completion:
        at = rules.cut(streamed.text) if rules is not None else None
        text = streamed.text if at is None else streamed.text[:at]
        timings = streamed.timings
        generation = Generation(
            self.renderer.encode(text), streamed.stop_reason, prompt_tokens, timings.get("cached", 0), timings["first_s"],
            timings["total_s"],
        )
        return Completion(text, generation, render_s)

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

    def _payload(self, prompt: list[int], request: CompletionRequest) -> dict:
        payload: dict[str, Any] = {
            "model": self._model(),
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": 0,
            "stream": True,
            "stop": self.stop_strings,
        }
        if self.accepts_token_ids is False:
            payload["prompt"] = self._text_prompt(request.parts)
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
        try:
            context = self._post_stream(payload)
            return context, context.__enter__()
        except httpx.RemoteProtocolError as error:
            log.debug("%s closed a kept-alive connection (%s); sending again", self.base_url, error)
        context = self._post_stream(payload)
        return context, context.__enter__()

    def _stream(self, prompt: list[int], request: CompletionRequest) -> "Streamed":
        cancelled, rules = request.cancelled, request.rules
        started = time.perf_counter()
        deadline = started + self.options.timeout_s
        payload = self._payload(prompt, request)
        try:
            response_context, response = self._open_stream(payload)
        except httpx.HTTPError as error:
            raise ServerError(self._failure(error)) from None
        on_cancel = getattr(cancelled, "on_cancel", None)
        if on_cancel is not None:
            on_cancel(response.hang_up)  # a superseded request closes its stream at once
        text, stop_reason, timings, first_s = "", None, {}, None
        ended = False  # the server said the completion is over ([DONE] or a finish_reason)
        try:
            if response.status_code in (400, 422) and self.accepts_token_ids is None and isinstance(payload["prompt"], list):
                body = response.read().decode("utf-8", "replace")
                response_context.__exit__(None, None, None)
                log.info("%s takes no token-id prompts (%s): sending text", self.base_url, _error_detail(body))
                self.accepts_token_ids = False
                return self._stream(prompt, request)
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
                        continue  # one candidate is asked for
                    piece = choice.get("text") or ""
                    if piece and first_s is None:
                        first_s = time.perf_counter() - started
                    text += piece
                    if choice.get("finish_reason"):
                        stop_reason = _STOP_REASONS.get(choice["finish_reason"], "length")
                        ended = True
                if rules is not None and rules.cut(text) is not None:
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
        return Streamed(text, stop_reason or "length", timings)


@dataclass
class Streamed:
    text: str
    stop_reason: str
    timings: dict  # cached (prompt tokens served from cache), first_s, total_s, and what else the server said


_STOP_REASONS = {"stop": "eos", "length": "length"}  # OpenAI's finish reasons


def _hang_up(response) -> None:
    """Close the connection under `response` from another thread: shutting the socket down wakes
    the read that waits for the next chunk (closing the response alone would wait for it)."""
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
    usage = event.get("usage")
    if isinstance(usage, dict):
        details = usage.get("prompt_tokens_details") or {}
        if isinstance(details, dict) and details.get("cached_tokens") is not None:
            figures["cached"] = int(details["cached_tokens"])
    return figures


def open_server_backend(model: str, options: ServerOptions, tuning: Tuning, *, offline: bool, trust_remote_code: bool) -> ServerBackend:
    """The model's tokenizer loaded here (without its weights) and the server asked for its model;
    a server that does not answer yet is no load error: `problem` says so, and the first
    completion it serves clears it."""
    if not options.url:
        raise ModelUnavailable("backend is set to server, but serverUrl is empty; set it to the inference server's base URL.")
    tokenizer, window = load_tokenizer_and_window(model, offline=offline, trust_remote_code=trust_remote_code)
    backend = ServerBackend(tokenizer, options, name=model, window=window, layout=tuning.layout)
    try:
        backend.warm_up()
    except ServerError as error:
        backend.problem = str(error)
    return backend
