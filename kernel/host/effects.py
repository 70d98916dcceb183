"""From an admitted intent to a receipt: which adapter runs an effect, and the kernel's own adapters.

Manifest effect names look like ``sys/<kind>@<version>``; ``kind`` picks the
adapter (``timer.set``, ``blob.put``, ``host.fs.read``, ...). The kernel's own
effects live here because they touch kernel services:

- ``timer.set`` is *deferred*: it schedules a durable kernel timer aimed at the
  world's inbox mailbox and returns no receipt; the receipt is made when the
  timer's message reaches the world (see ``host.WorldHost``), so a pending
  timer survives hibernation and crashes without any task waiting on it.
- ``blob.put`` / ``blob.get`` use the world universe's CAS.
- ``portal.send`` enqueues an event in another world's inbox, with the
  intent's idempotency key as message id, so a retried send is deduplicated.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aos.adapters.base import Adapter, EffectCall, Receipt
from aos.errors import AosError, InvalidArgument, UnknownWorld
from aos.kernel import metrics
from aos.kernel.names import kernel_name
from aos.kernel.world import cbor
from aos.kernel.world.builtins import builtin_effect
from aos.kernel.world.records import EffectIntentRecord

if TYPE_CHECKING:
    from aos.kernel.host.driver import WorldDriver
    from aos.kernel.services import KernelServices
    from aos.kernel.store import Op

log = logging.getLogger("aos.kernel.effects")
# effect families that act on the kernel's own worlds and stores (kernel/host/system_effects.py)
SYSTEM_FAMILIES = ("governance", "world", "universe", "workspace", "module")

def effect_kind(effect: str) -> str:
    """``sys/host.fs.read@1`` -> ``host.fs.read``; the kernel's kinds only (``""`` for
    any other effect, which no kernel adapter runs)."""
    builtin = builtin_effect(effect)
    return builtin.kind if builtin is not None else ""


def inbox(world_id: str) -> str:
    """The mailbox a world receives timers and portal messages in: a kernel
    name, so only the kernel's own dispatcher can put mail (or a receipt) in it."""
    return kernel_name("world", world_id)


def world_of_inbox(mailbox: str) -> str | None:
    prefix = kernel_name("world", "")
    return mailbox[len(prefix):] if mailbox.startswith(prefix) else None


# provider keys may also come from the variables the LLM spec names
_PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


def env_secrets(name: str) -> str:
    """Secrets resolved at dispatch from the kernel's environment: ``AOS_SECRET_<NAME>``
    (or, for provider API keys, the provider's usual variable). Only the operator
    decides what a world can name."""
    var = "AOS_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    value = os.environ.get(var)
    if value is None and name.upper() in _PROVIDER_KEYS:
        value = os.environ.get(name.upper())
    if value is None:
        raise AosError(f"secret {name!r} is not configured (set {var} for the kernel)")
    return value


def llm_base_urls() -> dict[str, str]:
    """Provider endpoints from the kernel's environment (the spec's ``*_BASE_URL``), never from a world."""
    names = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "gemini": "GEMINI_BASE_URL",
             "openai_compatible": "OPENAI_COMPATIBLE_BASE_URL"}
    return {provider: os.environ[var] for provider, var in names.items() if os.environ.get(var)}


class EffectDispatcher:
    def __init__(self, services: KernelServices, secrets: Callable[[str], str] = env_secrets) -> None:
        self.services = services
        self.secrets = secrets
        self.adapters: dict[str, Adapter] = {}
        self._llm_http: Any = None  # one pooled HTTP client for every llm.generate
        self._browser: Any = None  # one headless Chromium for every browser.* effect, started on the first
        self._load_host_adapters()
        exec_adapter = self.adapters.get("host.exec")
        if exec_adapter is not None and hasattr(exec_adapter, "run_dir"):
            exec_adapter.run_dir = os.path.join(services.config.data_dir, "run", "exec")
            from aos.adapters.host_exec import sweep_orphans

            killed = sweep_orphans(exec_adapter.run_dir)
            if killed:
                log.warning("event=orphans_killed count=%d reason=commands_of_a_crashed_kernel", killed)

    async def close(self) -> None:
        if self._llm_http is not None:
            await self._llm_http.aclose()
        if self._browser is not None:
            await self._browser.close()
            self._browser = None

    async def world_stopped(self, universe: str, world_id: str) -> None:
        """A world's driver stopped (hibernation, release, kernel stop): close its browser contexts."""
        if self._browser is not None:
            await self._browser.close_world(universe, world_id)

    def _load_host_adapters(self) -> None:
        """The adapters that reach outside the kernel; each is optional at import."""
        candidates = (
            ("aos.adapters.host_fs", "HostFsAdapter"),
            ("aos.adapters.host_exec", "HostExecAdapter"),
            ("aos.adapters.http", "HttpAdapter"),
            ("aos.adapters.host_fs_tools", "HostFsToolsAdapter"),
            ("aos.adapters.compile", "CompileAdapter"),
        )
        import importlib

        for module_name, class_name in candidates:
            try:
                adapter = getattr(importlib.import_module(module_name), class_name)()
            except (ImportError, AttributeError) as exc:
                log.warning("event=adapter_unavailable module=%s error=%r", module_name, str(exc))
                continue
            for kind in getattr(adapter, "kinds", ()):
                self.adapters[kind] = adapter

    def register(self, adapter: Adapter) -> None:
        for kind in adapter.kinds:
            self.adapters[kind] = adapter

    def is_deferred(self, intent: EffectIntentRecord) -> bool:
        return effect_kind(intent.effect) == "timer.set"

    async def start(self, driver: WorldDriver, intent: EffectIntentRecord,
                    with_receipt: list[Op] | None = None) -> Receipt | None:
        """Carry out one intent. ``None`` means the receipt will arrive later by mail.

        Writes that need only be durable by the time the receipt is may go into ``with_receipt``, which
        the driver commits in the receipt's own journal write (an ``llm.generate``'s history blobs)."""
        builtin = builtin_effect(intent.effect)
        if builtin is None:
            return Receipt.fail("no_adapter", f"this kernel has no adapter for {intent.effect}")
        kind = builtin.kind
        params: Mapping[str, Any] = intent.params if isinstance(intent.params, dict) else {}
        if intent.grant in driver.meta.revoked_grants:
            return Receipt.fail("revoked", f"grant {intent.grant!r} of this world has been revoked")
        grant = driver.world.manifest.grants.get(intent.grant or "")
        if grant is None or grant.cap != builtin.cap:
            # admission checked this; a journal written before the kernel fixed effect kinds may not have
            return Receipt.fail("not_granted", f"{intent.effect} needs a {builtin.cap!r} grant")
        if kind == "timer.set":
            await self._timer_set(driver, intent, params)
            return None
        if kind in ("blob.put", "blob.get"):
            return await self._blob(driver, kind, params)
        if kind == "portal.send":
            return await self._portal_send(driver, intent, params, grant.params)
        if kind == "llm.generate":
            return await self._llm(driver, intent, params, with_receipt)
        if kind == "effect.cancel":
            return await self._cancel(driver, intent, params)
        if kind.startswith("browser."):
            return await self._browser_effect(driver, intent, kind, params, grant.params)
        if kind.split(".", 1)[0] in SYSTEM_FAMILIES:  # governance, reading and making worlds, workspaces, compile
            from aos.kernel.host.system_effects import run_system_effect

            return await run_system_effect(self, driver, intent, kind, params, grant)
        adapter = self.adapters.get(kind)
        if adapter is None:
            return Receipt.fail("no_adapter", f"this kernel has no adapter for {kind}")
        if grant.cap in ("host.fs", "host.exec") and not driver.host.covers_host_grant(grant):
            # the operator may have stopped granting this directory since the world was made
            return Receipt.fail("not_granted", f"this kernel no longer grants {grant.cap} for grant {grant.name!r}")
        grant_params = grant.params if isinstance(grant.params, dict) else {}
        call = EffectCall(kind, params, grant_params, intent.idempotency_key, self.secrets)

        async def frame(value: Mapping[str, Any]) -> None:
            driver.publish_frame(intent.intent_hash, value)

        return await adapter.run(call, frame)

    async def _timer_set(self, driver: WorldDriver, intent: EffectIntentRecord, params: Mapping[str, Any]) -> None:
        deliver_at_ns = int(params.get("deliver_at_ns", 0))
        timer_key = self._timer_key(driver, intent)
        payload = cbor.encode(
            {"kind": "timer", "intent_hash": intent.intent_hash, "delivered_at_ns": deliver_at_ns, "key": params.get("key")}
        )
        await self.services.timers.schedule(
            driver.universe, timer_key, (deliver_at_ns + 999_999) // 1_000_000, inbox(driver.world_id), payload
        )

    async def _blob(self, driver: WorldDriver, kind: str, params: Mapping[str, Any]) -> Receipt:
        cas = self.services.cas
        try:
            if kind == "blob.put":
                data = params.get("data", b"")
                if not isinstance(data, bytes):
                    return Receipt.fail("bad_params", "blob.put needs bytes in data")
                return Receipt.ok(hash=await cas.put(driver.universe, data), size=len(data))
            return Receipt.ok(data=cas.get(driver.universe, str(params.get("hash", ""))))
        except AosError as exc:
            return Receipt.fail(exc.code, str(exc))

    async def _llm(self, driver: WorldDriver, intent: EffectIntentRecord, params: Mapping[str, Any],
                   with_receipt: list[Op] | None) -> Receipt:
        from aos.adapters.llm.effect import BlobCache, LlmGenerateAdapter

        universe = driver.universe
        cas = self.services.cas

        def blob_get(address: str) -> bytes:
            return cas.get(universe, address)

        async def blob_put(data: bytes) -> str:
            # the receipt says the history blobs are stored: committed with it, they cost no sync of their own
            if with_receipt is None:
                return await cas.put(universe, data)
            return await cas.put_with(universe, data, with_receipt)

        # a session's history by reference: decoded blobs shared by every call on this kernel
        cache: BlobCache | None = getattr(self, "_llm_blobs", None)
        if cache is None:
            cache = self._llm_blobs = BlobCache()

        # a world must not choose where its API key is sent: drop any endpoint it names
        safe = {k: v for k, v in params.items() if k != "base_url"}
        if "stream" not in safe:
            # stream while someone watches the world's frames (a shell, the console); a headless
            # session makes one plain request, cheaper to parse. The receipt is the same response.
            safe["stream"] = driver.host.frames_watched(universe, driver.world_id)

        async def frame(value: Mapping[str, Any]) -> None:
            driver.publish_frame(intent.intent_hash, value)

        if self._llm_http is None:
            import httpx

            # building a client costs ~20 ms (TLS context); share one, with its connection pool
            self._llm_http = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=30.0))
        try:
            adapter = LlmGenerateAdapter(blob_get=blob_get, blob_put=blob_put, cache=cache, scope=universe,
                                         base_urls=llm_base_urls(), http_client=self._llm_http)
            result = await adapter.run(safe, _Secrets(self.secrets), frame)
        except AosError as exc:  # e.g. the secret is not configured
            return Receipt.fail(exc.code, str(exc))
        metrics.observe_llm(str(params.get("provider", "")), str(params.get("model", "")),
                            str(result.get("status", "error")), result)
        if result.get("status") == "ok":
            return Receipt.ok(**{k: v for k, v in result.items() if k != "status"})
        error = result.get("error") or {}
        return Receipt.fail(str(error.get("code", "llm_error")), str(error.get("message", "")),
                            **{k: v for k, v in error.items() if k not in ("code", "message") and v is not None})

    async def _browser_effect(self, driver: WorldDriver, intent: EffectIntentRecord, kind: str,
                              params: Mapping[str, Any], grant_params: Any) -> Receipt:
        """A browser effect in the context of the emitting cell (its own cookies); screenshots go to CAS."""
        if self._browser is None:
            try:
                from aos.adapters.browser import BrowserAdapter
            except ImportError as exc:
                return Receipt.fail("browser_unavailable", f"this kernel has no browser adapter: {exc}")
            self._browser = BrowserAdapter()
        universe = driver.universe

        async def put_blob(data: bytes) -> str:
            return await self.services.cas.put(universe, data)

        async def frame(value: Mapping[str, Any]) -> None:
            driver.publish_frame(intent.intent_hash, value)

        key = intent.origin.key
        session = (universe, driver.world_id, "" if key is None else key if isinstance(key, str) else repr(key))
        call = EffectCall(kind, params, grant_params if isinstance(grant_params, dict) else {},
                          intent.idempotency_key, None)  # no secrets: a page must never be handed one
        return await self._browser.run(call, frame, session=session, put_blob=put_blob)

    async def _cancel(self, driver: WorldDriver, intent: EffectIntentRecord, params: Mapping[str, Any]) -> Receipt:
        """Cancel one of the same cell's open intents: stop its adapter (host.exec kills
        the process group) and settle it with an error receipt ``cancelled``."""
        target = next(
            (i for i in driver.world.open_intents()
             if i.origin == intent.origin and i.emitted_at_seq == params.get("emitted_at_seq")
             and i.effect_index == params.get("effect_index") and i.intent_hash != intent.intent_hash),
            None,
        )
        if target is None:
            return Receipt.ok(cancelled=False)
        await driver.cancel_effect(target.intent_hash)
        if effect_kind(target.effect) == "timer.set":
            await self.services.timers.cancel(driver.universe, self._timer_key(driver, target))
        await driver.deliver_receipt(target.intent_hash, Receipt.fail("cancelled", "cancelled by the workflow"))
        return Receipt.ok(cancelled=True)

    def _timer_key(self, driver: WorldDriver, intent: EffectIntentRecord) -> str:
        return kernel_name("wt", "") + hashlib.sha256(f"{driver.world_id}\0{intent.idempotency_key}".encode()).hexdigest()[:40]

    async def _portal_send(self, driver: WorldDriver, intent: EffectIntentRecord, params: Mapping[str, Any],
                           grant_params: Any) -> Receipt:
        from aos.kernel.scheduler.layout import split_world_key, world_key
        from aos.kernel.world.grants import portal_reaches

        target = str(params.get("dest_world", ""))
        try:
            universe, dest = split_world_key(target, driver.universe)  # W (its own universe) or U/W
        except InvalidArgument as exc:
            return Receipt.fail("bad_params", str(exc))
        message_id, sender = intent.idempotency_key, driver.world_id
        if universe != driver.universe:
            if not portal_reaches(grant_params.get("worlds") if isinstance(grant_params, dict) else None, target):
                return Receipt.fail("not_granted", f"world {target!r} is in another universe and the portal grant "
                                                   f"does not name it (worlds: [{target!r}] or [{universe + '/*'!r}])")
            # worlds of two universes may share a name, and so their idempotency keys: ids carry the universe
            message_id, sender = world_key(driver.universe, message_id), world_key(driver.universe, driver.world_id)
        payload = cbor.encode({"kind": "event", "schema": params.get("schema"), "value": params.get("value"),
                               "from": sender})
        worlds = self.services.worlds
        if worlds.cluster is None:  # one kernel: its own inboxes only
            refusal = await worlds.portal_refusal(universe, dest)  # may acquire it (shared storage)
            if refusal is not None:
                return Receipt.fail(*refusal)
            accepted = await self.services.mailboxes.send(universe, inbox(dest), message_id, payload)
        else:  # a cluster: here, or the host it runs on (kernel/scheduler/portal.py)
            try:
                accepted = await worlds.cluster.deliver(
                    universe, dest, message_id, sender, str(params.get("schema", "")),
                    cbor.encode(params.get("value")),
                    local=lambda: worlds.receive_portal(universe, dest, message_id, payload),
                    held=lambda: worlds.registry.get(universe, dest) is not None)
            except UnknownWorld as exc:
                return Receipt.fail("unknown_world", str(exc))
            except AosError as exc:  # refused by the receiving host for good (portal.PERMANENT)
                return Receipt.fail(exc.code, str(exc))
        metrics.observe_portal(driver.universe, accepted)
        return Receipt.ok(accepted=accepted)


class _Secrets:
    """The LLM adapter's resolver protocol over the dispatcher's secret function."""

    def __init__(self, resolve: Callable[[str], str]) -> None:
        self._resolve = resolve

    def resolve(self, name: str) -> str:
        return self._resolve(name)
