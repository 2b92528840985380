"""Outbound HTTP to URLs that users give us (webhook endpoints, imports): never into our own network.

A URL is checked twice. When it is given, `check_url` resolves it and refuses it with a reason a creator can
act on, before anything is stored. When each connection opens, `egress_client` (httpx-secure) checks the
address the socket really connects to, on every redirect hop: a DNS answer that changes between the two (DNS
rebinding) or a redirect to an internal host is refused as well. The operator's allow-list
(`egress_allowed_hosts`) lets named hosts through, e.g. a receiver on the same machine in a test or an
intranet service on purpose.

httpx-secure is an async-only library; sync code (Celery tasks) runs its requests through `run_async`.
"""

import asyncio
import socket
from collections.abc import Collection, Coroutine
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any, TypeVar

import httpx
from httpx_secure import SSRFProtectionError, httpx_ssrf_protection

from core.settings import Settings

T = TypeVar("T")

SCHEMES = ("http", "https")
_NAT64 = ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are an IPv4 address


class EgressReason(StrEnum):
    scheme = "scheme"
    credentials = "credentials"
    no_host = "no_host"
    unresolvable = "unresolvable"
    private_address = "private_address"


class EgressRefused(Exception):
    """A user-given URL we will not request; `message` names the problem for the creator."""

    def __init__(self, reason: EgressReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def is_public(ip: IPv4Address | IPv6Address) -> bool:
    """Globally routable, including the IPv4 address inside an IPv4-mapped, NAT64, 6to4 or Teredo IPv6 one.

    Loopback, private, link-local (cloud metadata: 169.254.169.254), CGNAT, multicast, reserved and the
    unspecified address are not.
    """
    if isinstance(ip, IPv6Address):
        embedded: IPv4Address | None = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip.teredo:
            embedded = ip.teredo[1]
        if embedded is None and ip in _NAT64:
            embedded = IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return ip.is_global and not ip.is_multicast


def allowed_hosts(settings: Settings) -> frozenset[str]:
    return frozenset(h.strip().strip("[]").lower() for h in settings.egress_allowed_hosts.split(",") if h.strip())


def _host_allowed(host: str, allowed: Collection[str]) -> bool:
    """Matched on the host as the URL spells it, never on what it resolves to: an attacker's name that
    resolves to an allowed address is not allowed."""
    return host.strip("[]").lower() in allowed


def check_url(url: str, settings: Settings) -> str:
    """The URL, normalized, if it may be requested now; else EgressRefused saying why."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as e:
        raise EgressRefused(EgressReason.scheme, f"not a URL: {e}") from None
    if parsed.scheme not in SCHEMES:
        raise EgressRefused(EgressReason.scheme, "only http:// and https:// URLs are accepted")
    if parsed.userinfo:
        raise EgressRefused(EgressReason.credentials, "a URL with a user name or password is not accepted")
    host = parsed.host
    if not host:
        raise EgressRefused(EgressReason.no_host, "the URL has no host")
    allowed = allowed_hosts(settings)
    if _host_allowed(host, allowed):
        return str(parsed)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise EgressRefused(EgressReason.unresolvable, f"the host {host} does not resolve") from None
    for *_, sockaddr in infos:
        ip = ip_address(str(sockaddr[0]).split("%", 1)[0])  # an IPv6 address may carry a %scope
        if not is_public(ip):
            raise EgressRefused(EgressReason.private_address, _private_message(host))
    return str(parsed)


def _private_message(host: str) -> str:
    return f"the host {host} is a private, loopback, link-local or reserved address: it cannot be reached from here"


def egress_client(settings: Settings, *, timeout: httpx.Timeout | float, max_redirects: int = 5) -> httpx.AsyncClient:
    """An AsyncClient that refuses (EgressRefused, from the request) any connection to a non-public address."""
    allowed = allowed_hosts(settings)

    def validate(hostname: str, ip: IPv4Address | IPv6Address, port: int) -> bool:
        if is_public(ip) or _host_allowed(hostname, allowed):
            return True
        raise EgressRefused(EgressReason.private_address, _private_message(hostname))

    client = httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=max_redirects,
        trust_env=False,  # no proxy from the environment: the guard must see the real destination
        headers={"User-Agent": "Streamify"},
    )
    return httpx_ssrf_protection(client, check_globally_reachable=False, custom_validator=validate)


def refused(exc: BaseException) -> EgressRefused | None:
    """The EgressRefused behind an exception a guarded request raised, if that is what it was."""
    if isinstance(exc, EgressRefused):
        return exc
    if isinstance(exc, SSRFProtectionError):
        return EgressRefused(EgressReason.private_address, _private_message(str(exc.hostname or "")))
    cause = exc.__cause__ or exc.__context__
    return refused(cause) if cause is not None and cause is not exc else None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a guarded request's coroutine from sync code, in a thread of its own if this one already runs an event
    loop (asyncio.run refuses that: an embedding app, or Playwright's sync API in the same process)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="egress") as pool:
        return pool.submit(asyncio.run, coro).result()
