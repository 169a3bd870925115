"""The package as installed: its version, its two ways in from a shell, its public names and its typing marker."""

import subprocess
import sys
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import pytest

import llm_economist

BIN = Path(sys.executable).parent


def test_the_version_is_the_installed_distributions():
    assert llm_economist.__version__ == version("llm-economist")


def test_a_source_tree_that_was_never_installed_has_a_placeholder_version(tmp_path):
    (tmp_path / "llm_economist").mkdir()
    (tmp_path / "llm_economist" / "__init__.py").write_text(Path(llm_economist.__file__).read_text())
    # -S: no site-packages, so no installed distribution of ours is in sight
    done = subprocess.run([sys.executable, "-S", "-c", "import llm_economist; print(llm_economist.__version__)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0+unknown"


@pytest.mark.parametrize("command", [[str(BIN / "llm-economist")], [sys.executable, "-m", "llm_economist"]],
                         ids=["script", "python -m"])
def test_the_command_prints_its_version(command):
    done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"llm-economist {llm_economist.__version__}"


def test_import_is_light_and_each_public_name_loads_on_first_use():
    code = (
        "import sys, llm_economist\n"
        "assert 'torch' not in sys.modules and 'gymnasium' not in sys.modules\n"
        "for name in llm_economist.__all__: getattr(llm_economist, name)\n"
        "print(llm_economist.make_mechanism is sys.modules['llm_economist.mechanisms'].make_mechanism)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        llm_economist.no_such_name  # noqa: B018


def test_the_package_carries_the_py_typed_marker():
    assert files("llm_economist").joinpath("py.typed").is_file()
