"""The console commands are installed and start."""

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("command", ["leafnet_convert", "leafnet_verify"])
def test_console_command_is_installed(command):
    executable = Path(sys.executable).parent / command
    result = subprocess.run([str(executable), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and f"usage: {command}" in result.stdout
