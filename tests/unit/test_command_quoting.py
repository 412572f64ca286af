"""Command templates: every substituted value is literal text for the shell (issue 9, defect 6).

Each case runs the resolved command with a real ``/bin/sh`` and checks that the command received
the value unchanged and that nothing the value tried to run ran.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlws.assets.component import resolve_command

PRINT_ARGS = f"{sys.executable} -c 'import sys; print(repr(sys.argv[1:]))'"


def hostile_values(marker: Path) -> list[str]:
    return [
        f"a;touch${{IFS}}{marker}",
        f"a && touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"'; touch {marker}; '",
        f'"; touch {marker}; "',
        f"a\ntouch {marker}",
        f"x|touch {marker}",
        f"$HOME ${{IFS}} * ? ~ \\ {marker}",
        "",
        "  spaced  out  ",
    ]


def run_sh(command: str, cwd: Path) -> str:
    """Run it in ``cwd`` (so that a value that did run leaves its files in the test's folder)."""
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=30, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_value_outside_quotes_is_exactly_one_word(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    for value in hostile_values(marker):
        resolved = resolve_command(f"{PRINT_ARGS} ${{{{inputs.x}}}} end", {"x": value})
        assert run_sh(resolved, tmp_path) == repr([value, "end"]), resolved
    assert not marker.exists()


def test_outputs_and_optional_segments_are_quoted_too(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    out = f"{tmp_path}/out dir;touch {marker}"
    for value in hostile_values(marker):
        resolved = resolve_command(
            f"{PRINT_ARGS} $[[--opt ${{{{inputs.x}}}}]] --out ${{{{outputs.o}}}}",
            {"x": value}, {"o": out})
        assert run_sh(resolved, tmp_path) == repr(["--opt", value, "--out", out]), resolved
    assert not marker.exists()


@pytest.mark.parametrize("template", [
    "{p} \"value=${{{{inputs.x}}}}!\"",
    "{p} 'value='${{{{inputs.x}}}}'!'",
    "{p} 'value=${{{{inputs.x}}}}!'",
    "{p} \"$(echo \"value=${{{{inputs.x}}}}!\")\"",
    "{p} \"`echo \"value=\"${{{{inputs.x}}}}\"!\"`\"",
])
def test_a_value_inside_the_templates_quotes_is_literal_text_there(tmp_path: Path,
                                                                   template: str) -> None:
    marker = tmp_path / "PWNED"
    for value in hostile_values(marker):
        resolved = resolve_command(template.format(p=PRINT_ARGS), {"x": value})
        assert run_sh(resolved, tmp_path) == repr([f"value={value}!"]), resolved
    assert not marker.exists()


def test_plain_values_read_as_before() -> None:
    cmd = "python train.py --data ${{inputs.data}} $[[--lr ${{inputs.lr}}]] --out ${{outputs.m}}"
    assert resolve_command(cmd, {"data": "/d", "lr": None}, {"m": "/o"}) == (
        "python train.py --data /d  --out /o")
    assert resolve_command(cmd, {"data": "/d", "lr": 0.1}, {"m": "/o"}) == (
        "python train.py --data /d --lr 0.1 --out /o")
    assert resolve_command("run ${{inputs.f}}", {"f": True}) == "run True"


@pytest.mark.parametrize("template", [
    # inside ${...} within double quotes the shell opens a new quoting level: closing the
    # template's quote there does not make the value literal
    "{p} \"${{HOME:+${{{{inputs.x}}}}}}\"",
    "{p} ${{HOME:+${{{{inputs.x}}}}}}",
    # a here-document's body expands $(...) and `...` whatever quotes the value carries, and a
    # value holding the delimiter line would end it early
    "cat <<EOF\n${{{{inputs.x}}}}\nEOF",
    "cat <<'EOF'\n${{{{inputs.x}}}}\nEOF",
    "cat <<-EOF\n\tvalue ${{{{inputs.x}}}}\n\tEOF",
    # arithmetic expansion evaluates $(...) in what it is given
    "echo $((1 + ${{{{inputs.x}}}}))",
])
def test_a_value_where_no_quoting_makes_it_literal_is_refused(tmp_path: Path,
                                                              template: str) -> None:
    from jupyter_mlws.errors import ValidationError

    marker = tmp_path / "PWNED"
    for value in hostile_values(marker):
        try:
            resolved = resolve_command(template.format(p=PRINT_ARGS), {"x": value})
        except ValidationError as exc:
            assert "inputs.x" in str(exc)
            continue
        subprocess.run(["/bin/sh", "-c", resolved], capture_output=True, timeout=30,
                       cwd=tmp_path)
        assert not marker.exists(), resolved
    with pytest.raises(ValidationError, match="environment variable"):
        resolve_command(template.format(p=PRINT_ARGS), {"x": "1"})


def test_text_after_a_here_document_is_quoted_as_usual(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    template = (f"cat <<'EOF' >/dev/null\n$HOME ${{x}}\nEOF\n{PRINT_ARGS} ${{{{inputs.x}}}} "
                f"\"${{HOME}}\" <<<x")
    for value in hostile_values(marker):
        resolved = resolve_command(template, {"x": value})
        out = subprocess.run(["/bin/bash", "-c", resolved], capture_output=True, text=True,
                             timeout=30, cwd=tmp_path)
        assert out.stdout.strip() == repr([value, str(Path.home())]), resolved
    assert not marker.exists()
