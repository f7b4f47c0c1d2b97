"""What a caller waiting in an ACD queue hears (pure; docs/ACD.md "What the caller hears").

The edge says these texts: while the call waits (its place and projected wait, refreshed by each
queue.status), the callback offer, the confirmation of an accepted callback and the greeting when the
caller answers the callback. Built-in texts exist for the languages below (the languages core/ivr.py
knows by name, less those without a built-in voice text yet: another language falls back to its base
language, then English). A queue overrides any of them per language in `queues[].announcements`
(config QueueAnnouncements); an override fills these placeholders:

  {position}  the caller's place in line, 1 = next
  {minutes}   the projected wait as said in the language: "less than a minute", "1 minute", "4 minutes"
              (whole minutes, rounded up: a caller is never promised less than the estimate)
  {when}      callback_accepted: "at 17:30 on 2026-12-03" (the time the caller chose, in the queue's
              timezone) or "as soon as an agent is free"

Any other {name} in an override is said as written: a typo in a config file must not cut an
announcement off at run time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.core.config.queues import Queue, QueueAnnouncements

DEFAULT_LANGUAGE = "en"

_PLACEHOLDER = re.compile(r"\{(position|minutes|when)\}")


@dataclass(frozen=True)
class _Builtin:
    waiting: str
    waiting_unknown: str
    callback_offer: str
    callback_accepted: str
    callback_answered: str
    less_than_a_minute: str
    one_minute: str
    minutes: str  # "{n} minutes"
    at_time: str  # "{time} on {date}" said as {when}
    as_soon_as_possible: str


BUILTIN: Mapping[str, _Builtin] = {
    "en": _Builtin(
        waiting="You are number {position} in line. Your expected wait is {minutes}.",
        waiting_unknown="You are number {position} in line. Please stay on the line.",
        callback_offer="To be called back instead, keeping your place in line, press 1 or say yes.",
        callback_accepted="Thank you. We will call you back {when}, and you keep your place in line. Goodbye.",
        callback_answered="Hello, this is your callback. Please hold while we connect you to an agent.",
        less_than_a_minute="less than a minute",
        one_minute="1 minute",
        minutes="{n} minutes",
        at_time="at {time} on {date}",
        as_soon_as_possible="as soon as an agent is free",
    ),
    "es": _Builtin(
        waiting="Usted es el número {position} en la fila. Su tiempo de espera estimado es de {minutes}.",
        waiting_unknown="Usted es el número {position} en la fila. Por favor, permanezca en la línea.",
        callback_offer="Para que le llamemos sin perder su lugar en la fila, oprima 1 o diga sí.",
        callback_accepted="Gracias. Le llamaremos {when} y conservará su lugar en la fila. Adiós.",
        callback_answered="Hola, le llamamos como pidió. Espere un momento mientras le comunicamos con un agente.",
        less_than_a_minute="menos de un minuto",
        one_minute="1 minuto",
        minutes="{n} minutos",
        at_time="a las {time} del {date}",
        as_soon_as_possible="en cuanto un agente esté libre",
    ),
    "fr": _Builtin(
        waiting="Vous êtes numéro {position} dans la file. Votre attente estimée est de {minutes}.",
        waiting_unknown="Vous êtes numéro {position} dans la file. Merci de rester en ligne.",
        callback_offer="Pour être rappelé en gardant votre place, appuyez sur 1 ou dites oui.",
        callback_accepted="Merci. Nous vous rappellerons {when}, et vous gardez votre place. Au revoir.",
        callback_answered="Bonjour, voici votre rappel. Veuillez patienter, nous vous mettons en relation avec un conseiller.",
        less_than_a_minute="moins d'une minute",
        one_minute="1 minute",
        minutes="{n} minutes",
        at_time="à {time} le {date}",
        as_soon_as_possible="dès qu'un conseiller sera libre",
    ),
    "pt": _Builtin(
        waiting="Você é o número {position} na fila. Sua espera estimada é de {minutes}.",
        waiting_unknown="Você é o número {position} na fila. Por favor, aguarde na linha.",
        callback_offer="Para receber uma ligação de volta sem perder seu lugar na fila, pressione 1 ou diga sim.",
        callback_accepted="Obrigado. Ligaremos de volta {when}, e você mantém seu lugar na fila. Até logo.",
        callback_answered="Olá, esta é a ligação de retorno. Aguarde enquanto conectamos você a um atendente.",
        less_than_a_minute="menos de um minuto",
        one_minute="1 minuto",
        minutes="{n} minutos",
        at_time="às {time} de {date}",
        as_soon_as_possible="assim que um atendente estiver livre",
    ),
}


def _builtin(language: str) -> _Builtin:
    return BUILTIN.get(language) or BUILTIN.get(language.split("-")[0]) or BUILTIN[DEFAULT_LANGUAGE]


def _override(queue: Queue | None, language: str, field: str) -> str | None:
    """The queue's text for `field` in `language`, else in its base language (es-MX → es); None: built-in."""
    if queue is None:
        return None
    for lang in (language, language.split("-")[0]):
        texts: QueueAnnouncements | None = queue.announcements.get(lang)
        value = getattr(texts, field) if texts is not None else None
        if value is not None:
            return value
    return None


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), template)


def wait_phrase(projected_wait_s: int, language: str) -> str:
    """The projected wait as said: whole minutes rounded up, "less than a minute" under 60 s."""
    words = _builtin(language)
    if projected_wait_s < 60:
        return words.less_than_a_minute
    n = math.ceil(projected_wait_s / 60)
    return words.one_minute if n == 1 else words.minutes.format(n=n)


def when_phrase(at_local: str, language: str) -> str:
    """`at_local` ("YYYY-MM-DD HH:MM" in the queue's timezone, core.callbacks.local_text; "" = as soon as
    possible) as said in the callback confirmation."""
    words = _builtin(language)
    text = at_local.strip()
    if not text:
        return words.as_soon_as_possible
    day, _, at = text.partition(" ")
    return words.at_time.format(time=at, date=day) if at else words.at_time.format(time=day, date="")


def _text(queue: Queue | None, language: str, field: str) -> str:
    custom = _override(queue, language, field)
    return custom if custom is not None else str(getattr(_builtin(language), field))


def waiting(queue: Queue | None, language: str, position: int, projected_wait_s: int, callback_offered: bool = False) -> str:
    """The WAITING announcement: place in line and projected wait (-1: unknown), then the callback offer."""
    field = "waiting" if projected_wait_s >= 0 else "waiting_unknown"
    values = {"position": str(max(position, 1)), "minutes": wait_phrase(max(projected_wait_s, 0), language)}
    text = _fill(_text(queue, language, field), values)
    if callback_offered:
        text = f"{text} {callback_offer(queue, language, position, projected_wait_s)}"
    return text


def callback_offer(queue: Queue | None, language: str, position: int = 1, projected_wait_s: int = -1) -> str:
    """The callback offer: key 1 or "yes" accepts (core.ivr's yes words)."""
    values = {"position": str(max(position, 1)), "minutes": wait_phrase(max(projected_wait_s, 0), language)}
    return _fill(_text(queue, language, "callback_offer"), values)


def callback_accepted(queue: Queue | None, language: str, at_local: str = "") -> str:
    """Said before the caller hangs up: when the callback comes ({when})."""
    return _fill(_text(queue, language, "callback_accepted"), {"when": when_phrase(at_local, language)})


def callback_answered(queue: Queue | None, language: str) -> str:
    """Said when the caller answers the callback, before the reserved agent is bridged."""
    return _fill(_text(queue, language, "callback_answered"), {})
