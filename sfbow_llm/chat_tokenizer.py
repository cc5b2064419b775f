"""A transformers-free tokenizer for the fast engine: ``tokenizers`` on the model's ``tokenizer.json`` and
its chat template rendered with jinja2, as transformers does, without importing transformers.

transformers renders chat templates in an immutable jinja2 sandbox with ``trim_blocks`` and
``lstrip_blocks``, the ``raise_exception`` and ``strftime_now`` globals and a ``tojson`` filter, passing
the special tokens (``bos_token``, ``eos_token``, ...) as variables; so does this. The texts it renders and
the ids it gives are tested equal to the transformers tokenizer's on the default model. It offers the part
of the transformers tokenizer interface sfbow_llm uses: ``__call__`` (``["input_ids"]``), ``decode``,
``apply_chat_template``, ``chat_template`` and the special token ids.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["SPECIALS_FILE", "ChatTokenizer", "save_specials"]

#: The file beside ``tokenizer.json`` with the chat template and the special tokens.
SPECIALS_FILE = "sfbow-llm-tokenizer.json"


def save_specials(tokenizer: Any, folder: Path) -> None:
    """Write ``tokenizer.json`` and :data:`SPECIALS_FILE` of a transformers (fast) ``tokenizer`` into ``folder``."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise ValueError(f"the tokenizer of this model ({type(tokenizer).__name__}) has no tokenizer.json form "
                         "(not a fast tokenizer), which the ctranslate2 engine needs; use engine='reference'")
    backend.save(str(folder / "tokenizer.json"))
    specials = {name: getattr(tokenizer, name, None) for name in ("bos_token", "eos_token", "pad_token", "unk_token")}
    template = getattr(tokenizer, "chat_template", None)
    (folder / SPECIALS_FILE).write_text(json.dumps({"chat_template": template, **specials}, indent=1) + "\n",
                                        encoding="utf-8")


class ChatTokenizer:
    """``tokenizer.json`` + chat template + special tokens, loaded from a folder written by :func:`save_specials`."""

    def __init__(self, folder: Path) -> None:
        import tokenizers

        self._tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        specials = json.loads((folder / SPECIALS_FILE).read_text(encoding="utf-8"))
        self.chat_template: str | None = specials.get("chat_template")
        self.specials: dict[str, str | None] = {k: specials.get(k) for k in ("bos_token", "eos_token", "pad_token",
                                                                             "unk_token")}
        self.bos_token_id = self._id(self.specials["bos_token"])
        self.eos_token_id = self._id(self.specials["eos_token"])
        self.pad_token_id = self._id(self.specials["pad_token"] or self.specials["eos_token"])
        self._template: Any = None

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._tokenizer.token_to_id(token)

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = True) -> dict[str, Any]:
        """``{"input_ids": ids}`` for one text, or a list of id lists for a list of texts."""
        if isinstance(text, str):
            return {"input_ids": self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}
        encoded = self._tokenizer.encode_batch(list(text), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encoded]}

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The token strings of ``ids`` (what CTranslate2 takes)."""
        return [str(self._tokenizer.id_to_token(i)) for i in ids]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def apply_chat_template(self, messages: Sequence[Mapping[str, str]], tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str:
        """The chat template rendered for ``messages`` (text only: ``tokenize`` must be false)."""
        if tokenize:
            raise ValueError("ChatTokenizer.apply_chat_template renders text only; tokenize the result")
        if self.chat_template is None:
            raise ValueError("this tokenizer has no chat template; give the prompt as a plain string instead")
        if self._template is None:
            self._template = _environment().from_string(self.chat_template)
        return str(self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                         **self.specials))


def _environment() -> Any:
    """The jinja2 sandbox transformers renders chat templates in."""
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env
