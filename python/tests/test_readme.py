"""README's shell blocks for sweeps and studies run as written, in a scratch directory, with the
`basin` under test and this environment's Python on the PATH: the README cannot drift from what
the commands do. Only the ResNet-20 study's run (8 minutes; theResNet20ExampleRunsEndToEnd runs it
at a small size) is left out, and the loopback port is a free one."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, free_port


def shell_blocks(section):
    """The ```sh blocks of README's `## section`."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end if end > 0 else None], re.S)


@pytest.mark.parametrize("section", ["Sweeps", "Studies"])
def test_the_readme_blocks_run_as_written(basin_binary, tmp_path, section):
    blocks = shell_blocks(section)
    assert blocks, f"README has no shell block under '## {section}'"
    # The repository's scripts and environment where the README expects them (its root).
    os.symlink(os.path.join(ROOT, "scripts"), tmp_path / "scripts")
    os.symlink(os.path.dirname(os.path.dirname(sys.executable)), tmp_path / ".venv")
    port = str(free_port())
    for block in blocks:
        lines = [line for line in block.splitlines() if not line.startswith("basin run resnet20.yaml")]
        script = "\n".join(lines).replace("127.0.0.1:5555", f"127.0.0.1:{port}")
        env = dict(os.environ, PATH=os.path.dirname(basin_binary) + os.pathsep + os.environ["PATH"])
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"README {section} block failed:\n{script}\n{done.stderr[-3000:]}"
    if section == "Sweeps":
        for run in ("run", "run2"):
            assert (tmp_path / run / "summary.csv").exists() or (tmp_path / run / "jobs.csv").exists()
            assert len(list((tmp_path / run / "results").rglob("*.npz"))) == 5
    else:
        assert (tmp_path / "study" / "summary.csv").exists() and (tmp_path / "barriers.svg").exists()
        assert (tmp_path / "digits-run" / "summary.csv").exists() and (tmp_path / "resnet20.yaml").exists()
