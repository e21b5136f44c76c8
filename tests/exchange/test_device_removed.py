"""A device an operator removes in the middle of a session.

The device is unknown from then on: its next message is dropped (the HTTP
binding's 400 with an empty body), as any message from an unknown device
is, and nothing escapes the engine.  On PostgreSQL a removal committed by
``teep tam device remove`` is seen by the very next query of a message
being handled; the host below makes it land at such a point.
"""

from __future__ import annotations

from dataclasses import dataclass

from teep.keys import PublicKey
from teep.protocol.tam import Appraised, TAMResult
from teep.tam.service import TAMService

from .conftest import URI, World
from .test_delivery_holds import catalogue, rogue_signer


@dataclass
class RemovedWhileHandled(TAMService):
    """The TAM's host, with the operator removing ``doomed`` while one of its
    messages is handled: just after its key is looked up (``after="key"``)
    or just after its appraisal (``after="appraisal"``)."""

    doomed: bytes | None = None
    after: str = "key"

    def device_key(self, kid: bytes) -> PublicKey | None:
        key = super().device_key(kid)
        if self.after == "key":
            self._remove(kid)
        return key

    def appraise(
        self,
        evidence: bytes | None,
        payload_format: str | None,
        nonce: bytes | None,
        agent_key: PublicKey,
    ) -> Appraised:
        verdict = super().appraise(evidence, payload_format, nonce, agent_key)
        if self.after == "appraisal":
            self._remove(agent_key.thumbprint)
        return verdict

    def _remove(self, kid: bytes) -> None:
        if kid == self.doomed:
            self.doomed = None
            assert self.store.remove_device(kid)


def removing(world: World, after: str = "key") -> RemovedWhileHandled:
    """Serve the world's TAM through a host that can remove the device."""
    host = RemovedWhileHandled(world.store, after=after)
    world.service = host
    world.tams.clear()
    return host


def kid(world: World) -> bytes:
    return world.device.tee.agent_key.kid


def answer_to_update(world: World) -> bytes:
    """Run a session up to the device's answer to its Update."""
    tam = world.tam()
    request = tam.connect().reply
    assert request is not None
    response = world.device.agent.process(request, URI).reply
    assert response is not None
    update = tam.process(response)
    assert update.reply is not None and not update.dropped
    result = world.device.agent.process(update.reply, URI).reply
    assert result is not None
    return result


def assert_dropped_as_removed(world: World, result: TAMResult) -> None:
    """Dropped with no text for the peer (400, empty body), one event."""
    assert result.dropped and result.reply is None and result.refusal is None
    assert [e.kind for e in result.events] == ["dropped"]
    assert "removed during its session" in result.events[0].detail
    assert world.store.get_device(kid(world)) is None


def test_success_of_a_device_removed_while_it_is_handled_is_dropped(
    world: World,
) -> None:
    host = removing(world)
    success = answer_to_update(world)
    host.doomed = kid(world)
    result = world.tam().process(success)
    assert_dropped_as_removed(world, result)
    # The token is used up: the Success cannot be replayed into the device's
    # next enrolment.
    assert world.tam().process(success).dropped
    # The device is met again at its next session.
    world.session()
    assert world.store.get_device(kid(world)) is not None


def test_error_of_a_device_removed_while_it_is_handled_is_dropped(
    world: World,
) -> None:
    """The failed delivery cannot be counted against a removed device."""
    world.session()  # hello installed
    catalogue(world, rogue_signer(world))
    host = removing(world)
    error = answer_to_update(world)
    host.doomed = kid(world)
    result = world.tam().process(error)
    assert_dropped_as_removed(world, result)
    assert world.store.failed_deliveries(kid(world)) == []


def test_query_response_of_a_device_removed_before_planning_is_dropped(
    world: World,
) -> None:
    host = removing(world, after="appraisal")
    tam = world.tam()
    request = tam.connect().reply
    assert request is not None
    response = world.device.agent.process(request, URI).reply
    assert response is not None
    host.doomed = kid(world)
    result = tam.process(response)
    assert result.dropped and result.reply is None and result.refusal is None
    assert "removed during its session" in result.events[-1].detail


def test_success_of_a_device_removed_after_its_update_is_dropped(
    world: World,
) -> None:
    """Removed between the Update and the Success: the Success is signed
    by a key the TAM no longer knows."""
    success = answer_to_update(world)
    assert world.store.remove_device(kid(world))
    result = world.tam().process(success)
    assert result.dropped and result.reply is None and result.refusal is None
