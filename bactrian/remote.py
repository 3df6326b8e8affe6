"""The generation service over any OpenAI-compatible server: vLLM, another ``bactrian serve``, a hosted API.

Variants come from the server's ``/v1/models`` (vLLM lists the base and every ``--lora-modules`` name, with
``parent`` set on adapters; ``bactrian serve`` adds ``languages`` and the weight ``digest``), or from a fixed
list (a hosted API whose model list is not ours to show). Each request streams in its own thread; cancelling
closes the HTTP response, which the server sees as a disconnect and stops the row.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from .client import Endpoint, EndpointError, Unreachable, redact
from .generation import GenerationParams
from .prompter import InputError, check_messages
from .service import Busy, GenRequest, Stream, StreamEvent, VariantInfo

log = logging.getLogger(__name__)


def request_params(p: GenerationParams) -> dict[str, Any]:
    """OpenAI chat parameters for our generation parameters (vLLM's extras only when they matter)."""
    out: dict[str, Any] = {"max_tokens": p.max_new_tokens, "temperature": p.temperature, "top_p": p.top_p}
    if p.seed is not None:
        out["seed"] = p.seed
    if p.stop:
        out["stop"] = list(p.stop)
    extra = {k: v for k, v in (("top_k", p.top_k), ("repetition_penalty", p.repetition_penalty),
                               ("min_tokens", p.min_tokens), ("ignore_eos", p.ignore_eos))
             if v != GenerationParams.__dataclass_fields__[k].default}
    if extra:
        out["extra_body"] = extra
    return out


class RemoteService:
    def __init__(self, base_url: str, *, api_key_env: str | None = None, models: list[str] | None = None,
                 timeout: float = 120.0):
        self.endpoint = Endpoint(base_url.rstrip("/"), "", api_key_env, timeout)
        self._fixed = list(models) if models else None
        self._variants: list[VariantInfo] | None = None
        self._lock = threading.Lock()
        self.base_name = ""
        if self._fixed is None:
            self.refresh()  # an unreachable URL or an empty list fails here, at start, with a clear message
        else:
            self._variants = [VariantInfo(m, "base") for m in self._fixed]
            self.base_name = self._fixed[0]

    def refresh(self) -> list[VariantInfo]:
        """Re-read ``/v1/models``."""
        import openai

        try:
            listed = list(self.endpoint.client().models.list())
        except openai.APIConnectionError as e:
            raise Unreachable(f"cannot reach {self.endpoint.base_url}: {e}") from e
        except openai.APIStatusError as e:
            raise EndpointError(f"{self.endpoint.base_url} answered {e.status_code} to /models") from e
        if not listed:
            raise EndpointError(f"{self.endpoint.base_url} lists no models")
        variants = []
        for m in listed:
            extra = m.model_extra or {}
            kind = "adapter" if extra.get("parent") else "base"
            variants.append(VariantInfo(m.id, kind, tuple(extra.get("languages") or ()), f"{m.id} @ {self.endpoint.base_url}",
                                        extra.get("digest")))
        variants.sort(key=lambda v: v.kind != "base")  # the base first, as the in-process service lists it
        with self._lock:
            self._variants = variants
            self.base_name = variants[0].name
        return variants

    def variants(self) -> list[VariantInfo]:
        with self._lock:
            return list(self._variants or [])

    def describe(self) -> str:
        return f"remote: {self.endpoint.base_url}"

    def close(self) -> None:
        pass

    def submit(self, request: GenRequest, on_event: Callable[[StreamEvent | Exception], None] | None = None) -> Stream:
        request.params.validate()
        if request.messages is None:
            raise InputError("a remote engine takes chat messages, not a raw prompt")
        check_messages(request.messages)
        names = [v.name for v in self.variants()]
        if request.model not in names:
            raise InputError(f"unknown model {request.model!r}; available at {self.endpoint.base_url}: {', '.join(names)}")
        stream = Stream(on_event)
        threading.Thread(target=self._run, args=(request, stream), name="remote-generation", daemon=True).start()
        return stream

    def _run(self, request: GenRequest, stream: Stream) -> None:
        import httpx
        import openai

        count, usage, reason = 0, None, None
        client = self.endpoint.client()
        stream.on_cancel(client.close)  # a request still queued on the server is dropped at once, not at its first token
        try:
            resp = client.chat.completions.create(
                model=request.model, messages=request.messages, stream=True, stream_options={"include_usage": True},
                **request_params(request.params))
            try:
                for chunk in resp:
                    if stream.cancelled:
                        stream.put(StreamEvent("", True, "cancelled", 0, count))
                        return
                    if chunk.usage:
                        usage = chunk.usage
                    if chunk.choices:
                        choice = chunk.choices[0]
                        reason = choice.finish_reason or reason
                        if choice.delta.content:
                            count += 1
                            stream.put(StreamEvent(choice.delta.content, False, None, 0, count))
            finally:
                resp.close()  # on cancel: the server sees the disconnect and frees the row
            prompt_tokens = usage.prompt_tokens if usage else 0
            completion = usage.completion_tokens if usage else count
            stream.put(StreamEvent("", True, reason or "stop", prompt_tokens, completion))
        except (openai.APIConnectionError, httpx.TransportError) as e:  # the latter: a stream cut mid-answer
            if stream.cancelled:  # we closed the connection ourselves
                stream.put(StreamEvent("", True, "cancelled", 0, count))
                return
            stream.put(Unreachable(f"{'lost the connection to' if count else 'cannot reach'} {self.endpoint.base_url}: {e}"))
        except openai.RateLimitError as e:
            stream.put(Busy(f"{self.endpoint.base_url} is busy; retry in a moment ({e.status_code})"))
        except openai.APIStatusError as e:  # its body may repeat the key we sent: redacted, and only in the detail
            said = redact(str(e), self.endpoint.api_key())
            stream.put(EndpointError(f"{request.model} @ {self.endpoint.base_url} answered {e.status_code}", detail=said))
            log.warning("remote model %s answered %s: %s", request.model, e.status_code, said)
        except Exception as e:  # noqa: BLE001 - whatever the client raised reaches the caller, not the void
            said = redact(str(e), self.endpoint.api_key())
            stream.put(EndpointError(f"{request.model} @ {self.endpoint.base_url} failed: {type(e).__name__}", detail=said))
            log.warning("remote model %s failed: %s", request.model, said)
