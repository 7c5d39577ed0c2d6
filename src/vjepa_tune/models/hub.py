"""Reaching the Hugging Face hub, or knowing at once that it cannot be reached.

A hub model id is not handed to transformers blindly: offline mode (`HF_HUB_OFFLINE`) or a failed TCP connect to the
hub (`HF_ENDPOINT`, or the proxy that reaches it; `HUB_PROBE_TIMEOUT_S` at most) means the local Hugging Face cache
only, or one error at once naming what to use instead, where huggingface_hub's own retries take half a minute.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import constants, try_to_load_from_cache

from vjepa_tune.errors import BadInput


def is_hub_id(source: str) -> bool:
    """What `loading` resolved a spec to names a model on the hub, not a folder here."""
    return not Path(source).expanduser().exists()


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def hub_failure(spec: str, error: Exception) -> BadInput:
    """What to say when transformers failed to load `spec` from the hub."""
    return BadInput(
        f"--model {spec}: could not load it from the Hugging Face hub (the hub could not be "
        f"reached, or it has no such model: {first_line(error)}). {LOCAL_CHOICES.format(spec=spec)}"
    )


LOCAL_CHOICES = (
    "Use a model on this machine instead: a local folder in Hugging Face format (download it where the hub is "
    "reachable with `hf download {spec} --local-dir DIR`, copy DIR here and pass --model DIR), --model tiny (the "
    "small V-JEPA 2 bundled with vjepa-tune, for trying the tool) or --model random:vitl (the architecture with "
    "random weights, for testing)."
)

HUB_PROBE_TIMEOUT_S = 3.0
"""How long the reachability probe waits for a connection to the hub (or its proxy) before calling it unreachable."""

PROBE_REUSE_S = 60.0
"""How long a probe's answer is reused (a model's config and weights cost one probe)."""
_probed: dict[tuple[str, int], tuple[float, bool]] = {}


def forget_hub_probes() -> None:
    """Drop the reused probe answers (the network changed, or a test set up another hub)."""
    _probed.clear()


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, now or when huggingface_hub was imported."""
    return constants.HF_HUB_OFFLINE or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def hub_endpoint() -> str:
    """The hub's address: HF_ENDPOINT when set, else huggingface_hub's (https://huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def connect_target(endpoint: str) -> tuple[str, int]:
    """Where a request to `endpoint` first connects: its proxy (HTTPS_PROXY and the like, unless NO_PROXY
    exempts the host), else the endpoint itself."""
    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_url.hostname:
            return proxy_url.hostname, proxy_url.port or (443 if proxy_url.scheme == "https" else 80)
    return host, port


def hub_reachable(endpoint: str | None = None, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a connection to the hub (or the proxy that reaches it) opens within `timeout_s`.

    A short TCP connect, not a request: it costs milliseconds when the network is up and at most `timeout_s` when
    it is not (a name lookup that hangs is given up on too), where huggingface_hub's own retries take half a
    minute. The answer is reused for a minute, so a model's config and weights cost one probe.
    """
    host, port = connect_target(endpoint or hub_endpoint())
    if not host:
        return False
    now = time.monotonic()
    cached = _probed.get((host, port))
    if cached is not None and now - cached[0] < PROBE_REUSE_S:
        return cached[1]
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    probe = threading.Thread(target=connect, name="hub-probe", daemon=True)
    probe.start()
    probe.join(timeout_s)
    reachable = bool(outcome) and outcome[0]
    _probed[(host, port)] = (now, reachable)
    return reachable


def _cached_locally(repo_id: str) -> bool:
    """The repo's config.json is in the local Hugging Face cache (a model downloaded before)."""
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str)


def cache_only(spec: str, log: Callable[[str], None]) -> bool:
    """For a hub id: True to load from the local cache only (the hub cannot be reached, and the model is cached);
    False to load from the hub. Raises at once, without huggingface_hub's half minute of retries, when the hub
    cannot be reached and the model is not cached."""
    if hub_offline():
        why = "HF_HUB_OFFLINE is set"
    elif not hub_reachable():
        why = f"the hub ({hub_endpoint()}) cannot be reached from here"
    else:
        return False
    if _cached_locally(spec):
        log(f"{why}: loading {spec} from the local Hugging Face cache.")
        return True
    raise BadInput(
        f"--model {spec} is a Hugging Face hub id, but {why} and the model is not in the local Hugging Face "
        f"cache. {LOCAL_CHOICES.format(spec=spec)}"
    )


