"""What ODK Collect shows the observer after a send, in the observer's language (English and
Russian, as the web app; English for any other). A problem with an answer names the
question by its code and its label, so the observer knows where to look in the form."""

from __future__ import annotations

from typing import Any

from api.checklist_schema import TemplateDefinition
from api.errors import AppError

LANGUAGES = ("en", "ru")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "stored": "Checklist received. Thank you.",
        "replayed": "This checklist had already arrived; nothing was changed.",
        "part": "Part of the checklist received; send the rest.",
        "problems": "The checklist was not stored ({n} problem(s)):",
        "too_large": "The submission is over {n} bytes; send fewer or smaller photos.",
    },
    "ru": {
        "stored": "Контрольный лист получен. Спасибо.",
        "replayed": "Этот контрольный лист уже был получен; ничего не изменено.",
        "part": "Часть контрольного листа получена; отправьте остальное.",
        "problems": "Контрольный лист не сохранён (проблем: {n}):",
        "too_large": "Отправка больше {n} байт; отправьте меньше фото или фото меньшего размера.",
    },
}

# The intake's problems by code, in Russian; any other problem keeps the intake's English.
PROBLEMS_RU: dict[str, str] = {
    "required": "нужен ответ",
    "not_an_option": "такого варианта ответа нет",
    "out_of_bounds": "число вне допустимых пределов",
    "wrong_type": "ответ не того вида",
    "hidden_by_show_if": "этот вопрос задаётся только при другом ответе на предыдущий",
    "not_in_phase": "этот вопрос не задаётся на этом этапе",
    "unknown_question": "такого вопроса в форме нет",
    "too_long": "слишком длинный текст",
    "unknown_station": "такого участка в миссии нет",
    "not_assigned": "этот участок вам не назначен",
    "in_future": "время наблюдения в будущем; проверьте часы телефона",
    "form_not_published": "эта форма больше не действует: загрузите текущие пустые формы и "
    "заполните контрольный лист заново",
    "id_reused_with_other_content": "под этим идентификатором уже получен другой контрольный лист",
    "not_latest_version": "этот контрольный лист уже исправлен; исправляйте последнюю версию",
    "revoked_token": "этот ключ отозван; попросите у штаба новый QR-код",
    "invalid_token": "неизвестный ключ; попросите у штаба новый QR-код",
    "too_many_attachments": "слишком много файлов",
    "file_too_large": "файл слишком большой",
    "photo_missing": "фото не пришло; отправьте форму ещё раз",
}
_WITH_DETAIL = {"out_of_bounds", "not_an_option", "too_long", "file_too_large"}
# Where the JSON channel's fields are in the form.
FIELD_NAMES = {
    "station": "station",
    "phase": "phase",
    "observed_at": "start time",
    "sent_at": "Date header",
    "replaces": "deprecatedID",
    "id": "instanceID",
}


def language_of(observer_language: str | None, mission_languages: list[str]) -> str:
    for lang in (observer_language, *mission_languages):
        if lang in LANGUAGES:
            return lang
    return "en"


def text(language: str, key: str, **fmt: Any) -> str:
    return TEXT.get(language, TEXT["en"])[key].format(**fmt)


def _label(definition: TemplateDefinition | None, code: str, language: str) -> str | None:
    if definition is None:
        return None
    questions, _ = definition.questions_and_phases()
    q = questions.get(code)
    if q is None:
        return None
    return q.label.get(language) or q.label[definition.languages[0]]


def _where(path: list[Any], definition: TemplateDefinition | None, language: str) -> str:
    parts = [p for p in path if p != "body"]
    if len(parts) >= 2 and parts[0] == "answers":
        code = str(parts[1])
        label = _label(definition, code, language)
        return f"{code} ({label})" if label else code
    if len(parts) >= 2 and parts[0] == "photos":
        return str(parts[1])
    if len(parts) >= 2 and parts[0] == "attachments" and isinstance(parts[1], int):
        return f"photo {parts[1] + 1}"
    if parts and parts[0] in FIELD_NAMES:
        return FIELD_NAMES[str(parts[0])]
    return ".".join(str(p) for p in parts) or "form"


def problem(exc: AppError, language: str, definition: TemplateDefinition | None) -> str:
    """The whole error as one message: every problem, each naming its question."""
    if not exc.errors:
        translated = PROBLEMS_RU.get(exc.code or "") if language == "ru" else None
        return translated or exc.detail
    lines = [text(language, "problems", n=len(exc.errors))]
    for e in exc.errors:
        message = e.get("message", "")
        if language == "ru" and e.get("code") in PROBLEMS_RU:
            ru = PROBLEMS_RU[e["code"]]
            # Numbers and option codes in the English text say which bound or answer.
            message = f"{ru} ({message})" if e["code"] in _WITH_DETAIL else ru
        lines.append(f"{_where(list(e.get('path', [])), definition, language)}: {message}")
    return "\n".join(lines)
