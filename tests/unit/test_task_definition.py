"""Task definitions: the template, YAML steps and their checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haven.tasks.definition import (
    DefinitionError,
    Step,
    from_command,
    parse,
    render,
    split_command,
)

RUN = {
    "ID": "ca7",
    "Registry": "myreg.localhost:5000",
    "RegistryName": "myreg",
    "Date": "20261127-101500z",
    "OS": "linux",
    "Architecture": "amd64",
}


def test_template_values_and_aliases_are_replaced_and_shell_variables_kept() -> None:
    text = "cmd: $Registry/app:{{.Run.ID}} echo $HOME $$ {{ .Values.tag }} $ID {{.Run.Date}}"
    rendered = render(text, RUN, {"tag": "v2"})
    assert rendered == ("cmd: myreg.localhost:5000/app:ca7 echo $HOME $ v2 ca7 20261127-101500z")
    with pytest.raises(DefinitionError, match="unknown template value"):
        render("{{.Values.missing}}", RUN, {})
    with pytest.raises(DefinitionError, match="unknown template value"):
        render("{{.Secrets.x}}", RUN, {})
    assert render("{{.Values.any}}", RUN, None) == "value"


def test_steps_defaults_and_order() -> None:
    definition = parse(
        "stepTimeout: 100\n"
        "env: [A=1]\n"
        "steps:\n"
        "  - cmd: img one 'two words'\n"
        "  - id: side\n"
        "    cmd: img\n"
        "    when: ['-']\n"
        "    timeout: 5\n"
        "  - cmd: img\n"
        "    when: [acb_step_0, side]\n"
        "    entryPoint: /bin/sh\n"
        "    workingDirectory: /w\n"
        "    env: [B=2]\n"
        "    ignoreErrors: true\n"
        "    retries: 2\n"
        "    retryDelay: 1\n"
    )
    first, side, last = definition.steps
    assert (first.id, first.image, first.args, first.timeout) == (
        "acb_step_0",
        "img",
        ("one", "two words"),
        100,
    )
    assert first.after(None) == () and side.after(first) == ()
    assert last.after(side) == ("acb_step_0", "side")
    assert (last.entry_point, last.working_directory, last.env) == ("/bin/sh", "/w", ("B=2",))
    assert (last.ignore_errors, last.retries, last.retry_delay) == (True, 2, 1)
    assert definition.env == ("A=1",)
    assert Step("b", "img", ()).after(first) == ("acb_step_0",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: [\n", "not valid YAML"),
        ("- cmd: x\n", "mapping with a list of steps"),
        ("steps: []\n", "1 to 64 steps"),
        ("steps:\n" + "  - cmd: x\n" * 65, "1 to 64 steps"),
        ("steps:\n  - push: [x]\n", "push steps"),
        ("steps:\n  - cmd: 3\n", "needs a cmd"),
        ("steps:\n  - cmd: ''\n", "names no image"),
        ("steps:\n  - cmd: x\n    detach: true\n", "unknown key"),
        ("networks: []\nsteps:\n  - cmd: x\n", "unknown key"),
        ("steps:\n  - {id: 'a b', cmd: x}\n", "id must be"),
        ("steps:\n  - {id: a, cmd: x}\n  - {id: a, cmd: x}\n", "used twice"),
        ("steps:\n  - {cmd: x, when: [b]}\n  - {id: b, cmd: x}\n", "earlier step"),
        ("steps:\n  - {cmd: x, when: ['-', a]}\n", "cannot be combined"),
        ("steps:\n  - {cmd: x, when: a}\n", "list of step ids"),
        ("steps:\n  - {cmd: x, timeout: 0}\n", "timeout"),
        ("steps:\n  - {cmd: x, timeout: 28801}\n", "timeout"),
        ("stepTimeout: true\nsteps:\n  - cmd: x\n", "stepTimeout"),
        ("steps:\n  - {cmd: x, env: [NOEQUALS]}\n", "NAME=VALUE"),
        ("steps:\n  - {cmd: x, env: '=x'}\n", "NAME=VALUE"),
        ("steps:\n  - {cmd: x, retries: 11}\n", "retries"),
        ("steps:\n  - {cmd: x, entryPoint: ''}\n", "entryPoint"),
        ("steps:\n  - cmd: x\n" + "# " + "x" * 70_000 + "\n", "larger than"),
    ],
)
def test_bad_definitions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse(text)


@given(
    st.lists(
        st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1),
        min_size=1,
        max_size=5,
    )
)
def test_a_command_survives_quoting_into_yaml_and_back(words: list[str]) -> None:
    import shlex

    command = " ".join(shlex.quote(w) for w in words)
    (step,) = parse(from_command(command)).steps
    assert (step.image, *step.args) == tuple(words)
    assert split_command(command, "cmd") == (words[0], tuple(words[1:]))
