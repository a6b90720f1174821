"""broker.core.template: `{{ name }}` placeholders, shell quoting, typed kwargs."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from broker.core.template import BUILTINS, known_name, placeholders, render, render_any

HOSTILE = [
    "$(rm -rf /)",
    "`rm -rf /`",
    "'; echo pwned",
    '"; echo pwned; "',
    "a b  c",
    "it's",
    '"double"',
    "back\\slash",
    "semi;colon && amp || pipe | gt > lt <",
    "$HOME ${HOME} $((1+1))",
    "*",
    "~",
    "-n",
    "",
    "new\nline",
    "tab\there",
    "!bang !!",
    "ünïcödé ✓",
    "#comment",
]


def test_placeholders_in_order() -> None:
    text = "{{a}} {{ b }} {{  c.d  }} {{params.e}} {{a}}"
    assert placeholders(text) == ["a", "b", "c.d", "params.e", "a"]


@pytest.mark.parametrize(
    "text", ["{a}", "{{ }}", "{{ 1x }}", "{{ a b }}", "{{-a}}", "{ {a} }", "$a", "{{a-b}}"]
)
def test_not_placeholders(text: str) -> None:
    assert placeholders(text) == []


def test_render_plain() -> None:
    assert render("x={{ x }} y={{y}}", {"x": 1, "y": "two"}) == "x=1 y=two"


def test_render_non_strings_as_json() -> None:
    values = {"i": 3, "f": 2.5, "b": True, "n": None, "l": [1, "a"], "d": {"k": 1}}
    assert (
        render("{{i}}|{{f}}|{{b}}|{{n}}|{{l}}|{{d}}", values) == '3|2.5|true|null|[1,"a"]|{"k":1}'
    )


def test_render_prefixes() -> None:
    values = {"n": 4, "v": "x"}
    assert render("{{ params.n }} {{ matrix.v }} {{n}}", values) == "4 x 4"


def test_render_unknown_name_raises_keyerror() -> None:
    with pytest.raises(KeyError):
        render("{{ nope }}", {"n": 1})
    with pytest.raises(KeyError):
        render("{{ params.nope }}", {"n": 1})


def test_render_leaves_other_braces_alone() -> None:
    assert render("awk '{print $1}' {{ f }}", {"f": "x"}) == "awk '{print $1}' x"


def test_substituted_text_is_not_rendered_again() -> None:
    assert render("{{ a }}", {"a": "{{ b }}", "b": "boom"}) == "{{ b }}"


@pytest.mark.parametrize("value", HOSTILE)
def test_shell_quoting_is_one_literal_word(value: str) -> None:
    cmd = render("printf '%s' {{ v }}", {"v": value}, shell_quote=True)
    assert shlex.split(cmd) == ["printf", "%s", value]


@pytest.mark.parametrize("value", HOSTILE)
def test_shell_quoting_survives_a_real_shell(value: str, tmp_path: object) -> None:
    cmd = render("printf '%s' {{ v }}", {"v": value}, shell_quote=True)
    out = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, check=True, cwd=str(tmp_path))
    assert out.stdout.decode() == value


def test_shell_quoting_of_json_values() -> None:
    cmd = render("printf '%s' {{ v }}", {"v": {"a": "b c", "d": [1, "$(x)"]}}, shell_quote=True)
    assert shlex.split(cmd)[2] == '{"a":"b c","d":[1,"$(x)"]}'


def test_safe_values_are_left_bare() -> None:
    assert (
        render("run {{ n }} {{ f }}", {"n": 12, "f": "data.csv"}, shell_quote=True)
        == "run 12 data.csv"
    )


def test_without_shell_quote_text_is_verbatim() -> None:
    assert render("{{ v }}", {"v": "$(rm -rf /)"}) == "$(rm -rf /)"


# -- render_any (kwargs) --------------------------------------------------------------------


@pytest.mark.parametrize("value", [3, 2.5, True, None, [1, 2], {"k": [1]}, "s"])
def test_lone_placeholder_keeps_its_type(value: object) -> None:
    assert render_any("{{ v }}", {"v": value}) == value
    assert render_any("  {{v}} ", {"v": value}) == value
    assert render_any("{{ params.v }}", {"v": value}) == value
    assert render_any("{{ matrix.v }}", {"v": value}) == value


def test_embedded_placeholder_becomes_text() -> None:
    assert render_any("n={{ n }}", {"n": 3}) == "n=3"
    assert render_any("{{ a }}{{ b }}", {"a": 1, "b": 2}) == "12"


def test_render_any_walks_lists_and_dicts() -> None:
    kwargs = {
        "n": "{{ n }}",
        "items": ["{{ n }}", "x{{ n }}", 7],
        "nested": {"k": {"deep": "{{ s }}"}},
        "z": None,
    }
    assert render_any(kwargs, {"n": 5, "s": "t"}) == {
        "n": 5,
        "items": [5, "x5", 7],
        "nested": {"k": {"deep": "t"}},
        "z": None,
    }


def test_render_any_never_shell_quotes() -> None:
    assert render_any("x {{ v }}", {"v": "a b"}) == "x a b"


def test_render_any_unknown_raises() -> None:
    with pytest.raises(KeyError):
        render_any({"a": ["{{ nope }}"]}, {})


def test_render_any_leaves_dict_keys_alone() -> None:
    assert render_any({"{{ k }}": 1}, {"k": "x"}) == {"{{ k }}": 1}


# -- known_name -----------------------------------------------------------------------------


def test_builtins() -> None:
    assert BUILTINS == {"run", "node", "task", "attempt"}
    for name in BUILTINS:
        assert known_name(name, set())


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("n", True),
        ("params.n", True),
        ("matrix.n", True),
        ("m", False),
        ("params.m", False),
        ("x.n", False),
    ],
)
def test_known_name(name: str, known: bool) -> None:
    assert known_name(name, {"n"}) is known
