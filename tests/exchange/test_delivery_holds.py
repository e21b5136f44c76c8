"""A version a device keeps failing to install is held back from it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from teep import components
from teep.keys import KeyKind, PrivateKey
from teep.protocol.messages import Error, Update
from teep.protocol.registry import FINAL, ErrCode
from teep.protocol.signing import open_signed, peek, sign_message
from teep.tam.catalogue import add_component
from teep.tam.delivery_store import DEFAULT_MAX_FAILED_DELIVERIES
from teep.tam.models import TA
from teep.tam.store import DeliveryFailureRecord

from .conftest import NAME, URI, Step, World, envelope, trust_signer

ROGUE = "rogue"


def kid(world: World) -> bytes:
    return world.device.tee.agent_key.kid


def rogue_signer(world: World) -> PrivateKey:
    """A signer the TAM accepts and the device does not trust."""
    signer = PrivateKey.generate(KeyKind.P256)
    trust_signer(world.store, signer.public, "rogue signer")
    return signer


def catalogue(world: World, signer: PrivateKey, sequence: int = 1) -> bytes:
    """Catalogue a version of ``rogue`` signed by ``signer`` and require it."""
    env = envelope(ROGUE, signer, sequence)
    add_component(world.store, ROGUE, env, now=time.time())
    if not any(p.component == ROGUE for p in world.store.list_policies()):
        world.store.add_policy(ROGUE, selector="*")
    return env


def sent(world: World, steps: list[Step]) -> tuple[bytes, ...] | None:
    """The envelopes the session's Update carried (None: no Update)."""
    if len(steps) < 2:
        return None
    keys = [k.public for k in world.tam_keys]
    message = open_signed(peek(steps[1].tam), keys, dialect=FINAL).message
    assert isinstance(message, Update)
    return message.manifest_list or ()


def answer(world: World, steps: list[Step]) -> object:
    """The device's answer to the Update."""
    data = steps[1].agent.reply or b""
    key = world.device.tee.agent_key.public
    return open_signed(peek(data), [key], dialect=FINAL).message


def held_events(world: World) -> list[str]:
    return [
        e.message
        for e in world.store.list_events(kid(world))
        if e.kind == "delivery-held"
    ]


def failures(world: World) -> dict[str, DeliveryFailureRecord]:
    return {f.name: f for f in world.store.failed_deliveries(kid(world))}


def test_a_failing_version_is_sent_three_times_then_held(world: World) -> None:
    """The device refuses the rogue signer: three Updates carry the version,
    then the TAM holds it back, recording "delivery-held" once."""
    world.session()  # hello installed
    env = catalogue(world, rogue_signer(world))
    for count in range(1, DEFAULT_MAX_FAILED_DELIVERIES + 1):
        steps = world.session()
        assert sent(world, steps) == (env,)
        error = answer(world, steps)
        assert isinstance(error, Error)
        assert error.err_code == ErrCode.ERR_MANIFEST_PROCESSING_FAILED
        assert failures(world)[ROGUE].failures == count
        assert held_events(world) == []
    for _ in range(2):
        steps = world.session()
        assert sent(world, steps) is None
        assert steps[0].after is not None
        kinds = {e.kind: e.detail for e in steps[0].after.events}
        assert "compliant" not in kinds
        assert kinds["held-back"] == (
            f"nothing sent: {ROGUE} held back after failed deliveries"
        )
    (message,) = held_events(world)
    assert f"{ROGUE} sequence 1 held back after 3 failed deliveries" in message
    assert "ERR_MANIFEST_PROCESSING_FAILED" in message
    failed = world.store.list_events(kid(world), kinds=["update-failed"])
    assert len(failed) == DEFAULT_MAX_FAILED_DELIVERIES
    assert all(e.message.startswith("ERR_MANIFEST_PROCESSING_FAILED: ") for e in failed)
    record = failures(world)[ROGUE]
    assert record.held_at is not None and record.kind == TA
    assert record.err_code == ErrCode.ERR_MANIFEST_PROCESSING_FAILED


def test_retry_sends_it_again(world: World) -> None:
    """Clearing the device's failed deliveries (``teep tam device retry``)
    sends the held version at the next session."""
    env = catalogue(world, rogue_signer(world))
    for _ in range(DEFAULT_MAX_FAILED_DELIVERIES):
        world.session()
    assert sent(world, world.session()) is None
    assert world.store.clear_failed_deliveries(kid(world), ROGUE) == 1
    assert sent(world, world.session()) == (env,)
    assert failures(world)[ROGUE].failures == 1


def test_a_newer_version_is_sent_while_the_old_is_held(world: World) -> None:
    """A newer catalogued version is another envelope: it is sent even
    though the old one is held, and its Success clears every count."""
    catalogue(world, rogue_signer(world))
    for _ in range(DEFAULT_MAX_FAILED_DELIVERIES):
        world.session()
    assert sent(world, world.session()) is None
    newer = catalogue(world, world.signer, sequence=2)
    steps = world.session()
    assert sent(world, steps) == (newer,)
    assert type(answer(world, steps)).__name__ == "Success"
    assert failures(world) == {}
    manifest = world.device.tee.components.manifest(components.manifest_id(ROGUE))
    assert manifest is not None and manifest.sequence_number == 2


def test_success_clears_the_count(world: World) -> None:
    """A version that failed installs once the device trusts its signer; the
    count is gone, so a later failure starts again from one."""
    signer = rogue_signer(world)
    env = catalogue(world, signer)
    world.session()
    world.session()
    assert failures(world)[ROGUE].failures == 2
    world.device.tee.add_signer_key(signer.public)
    steps = world.session()
    assert sent(world, steps) == (env,)
    assert type(answer(world, steps)).__name__ == "Success"
    assert failures(world) == {}


def test_reports_tell_which_version_failed(world: World) -> None:
    """An Update carrying two versions, one failing: the SUIT Reports in the
    Error name the failed manifest, so only that one is counted."""
    catalogue(world, rogue_signer(world))
    steps = world.session()
    assert len(sent(world, steps) or ()) == 2  # hello, then rogue
    error = answer(world, steps)
    assert isinstance(error, Error) and len(error.suit_reports or ()) == 2
    assert list(failures(world)) == [ROGUE]


def test_an_error_without_reports_counts_every_version(world: World) -> None:
    """When the Error does not say which manifest failed, every version the
    Update carried is counted."""
    catalogue(world, rogue_signer(world))
    tam = world.tam()
    reply = tam.connect().reply
    assert reply is not None
    response = world.device.agent.process(reply, URI).reply
    assert response is not None
    update = tam.process(response).reply
    assert update is not None
    keys = [k.public for k in world.tam_keys]
    token = open_signed(peek(update), keys, dialect=FINAL).message.token  # type: ignore[attr-defined]
    error = Error(token=token, err_code=ErrCode.ERR_TEMPORARY_ERROR, err_msg="busy")
    result = tam.process(sign_message(error, [world.device.tee.agent_key]))
    assert not result.dropped
    counted = failures(world)
    assert sorted(counted) == [NAME, ROGUE]
    assert counted[NAME].err_code == ErrCode.ERR_TEMPORARY_ERROR
    assert counted[NAME].err_msg == "busy"


def test_limit_zero_never_holds(world: World) -> None:
    """With the limit at 0 the TAM keeps sending a failing version."""
    world.store.set_max_failed_deliveries(0)
    world.session()
    env = catalogue(world, rogue_signer(world))
    for _ in range(DEFAULT_MAX_FAILED_DELIVERIES + 1):
        assert sent(world, world.session()) == (env,)
    assert held_events(world) == []


def test_limit_change_reaches_a_running_service(world: World) -> None:
    """The limit is read again after it changes (as workers do)."""
    world.session()
    env = catalogue(world, rogue_signer(world))
    assert sent(world, world.session()) == (env,)
    world.store.set_max_failed_deliveries(1)
    assert sent(world, world.session()) is None
    assert len(held_events(world)) == 1
    world.store.set_max_failed_deliveries(2)
    assert sent(world, world.session()) == (env,)
    assert sent(world, world.session()) is None
    assert len(held_events(world)) == 2


@contextmanager
def statements(world: World) -> Iterator[list[str]]:
    """The SQL statements the store runs inside the block."""
    seen: list[str] = []
    engine = world.store._engine

    def note(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_compliant_sessions_do_not_read_failures(world: World) -> None:
    """A device with nothing to install costs no query of failed deliveries."""
    world.session()
    with statements(world) as seen:
        steps = world.session()
    assert sent(world, steps) is None
    assert seen and not any("delivery_failures" in s for s in seen)
