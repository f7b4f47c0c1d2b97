"""core.announce: what a waiting caller hears, built in per language and overridden per queue."""

from __future__ import annotations

import pytest

from switchboard.core import announce
from switchboard.core.config.queues import Queue, QueueAnnouncements


def _queue(**announcements: QueueAnnouncements) -> Queue:
    return Queue(id="sales", announcements=announcements)


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0, "less than a minute"), (59, "less than a minute"), (60, "1 minute"), (61, "2 minutes"), (240, "4 minutes")],
)
def test_wait_is_whole_minutes_rounded_up(seconds, said):
    assert announce.wait_phrase(seconds, "en") == said


def test_waiting_says_position_and_projected_wait():
    assert announce.waiting(None, "en", 3, 125) == "You are number 3 in line. Your expected wait is 3 minutes."


def test_waiting_unknown_when_no_projection():
    text = announce.waiting(None, "en", 2, -1)
    assert "number 2" in text and "minute" not in text


def test_callback_offer_follows_the_wait_when_offered():
    text = announce.waiting(None, "en", 5, 600, callback_offered=True)
    assert text.startswith("You are number 5 in line. Your expected wait is 10 minutes.")
    assert text.endswith("press 1 or say yes.")
    assert "press 1" not in announce.waiting(None, "en", 5, 600)


def test_spanish_built_in_and_region_falls_back_to_base_language():
    assert announce.waiting(None, "es-MX", 1, 30) == (
        "Usted es el número 1 en la fila. Su tiempo de espera estimado es de menos de un minuto."
    )
    assert "oprima 1 o diga sí" in announce.callback_offer(None, "es")


def test_unknown_language_falls_back_to_english():
    assert announce.waiting(None, "de", 1, 60) == announce.waiting(None, "en", 1, 60)


def test_every_builtin_language_has_every_text():
    for lang in announce.BUILTIN:
        assert "2" in announce.waiting(None, lang, 2, 90) and "{" not in announce.waiting(None, lang, 2, 90, True)
        assert "{" not in announce.callback_accepted(None, lang, "2026-12-03 17:30")
        assert announce.callback_answered(None, lang)


def test_callback_accepted_with_and_without_a_time():
    assert "at 17:30 on 2026-12-03" in announce.callback_accepted(None, "en", "2026-12-03 17:30")
    assert "as soon as an agent is free" in announce.callback_accepted(None, "en", "")
    assert "a las 17:30 del 2026-12-03" in announce.callback_accepted(None, "es", "2026-12-03 17:30")


def test_queue_override_per_language_fills_placeholders():
    queue = _queue(
        en=QueueAnnouncements(waiting="Caller {position}, about {minutes}.", callback_accepted="Back {when}!"),
        es=QueueAnnouncements(waiting_unknown="Posición {position}."),
    )
    assert announce.waiting(queue, "en", 4, 200) == "Caller 4, about 4 minutes."
    assert announce.waiting(queue, "en-US", 4, 200) == "Caller 4, about 4 minutes."
    assert announce.callback_accepted(queue, "en", "2026-12-03 09:05") == "Back at 09:05 on 2026-12-03!"
    assert announce.waiting(queue, "es", 2, -1) == "Posición 2."
    # Fields the queue does not set come from the built-in texts of the language.
    assert announce.waiting(queue, "es", 2, 30).startswith("Usted es el número 2")
    assert announce.callback_answered(queue, "en") == announce.callback_answered(None, "en")


def test_unknown_placeholder_is_said_as_written():
    # config validation refuses it (test_config); a text that got past it is still said, never an error mid-call
    queue = _queue(en=QueueAnnouncements.model_construct(waiting="You are {positon} in line, {minutes}."))
    assert announce.waiting(queue, "en", 1, 0) == "You are {positon} in line, less than a minute."
