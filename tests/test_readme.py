"""CI must install and test exactly as the README tells a new user to; the docs list every
saliency method."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    setup, test = readme_commands("Set up"), readme_commands("Test")
    assert setup and test
    for command in setup:
        assert command in ci, f"README set-up command missing from .ci/run: {command}"
    for command in test:
        assert any(line.strip() == command for line in ci), f"not in .ci/run: {command}"
    (main_job,) = readme_commands("Run the main job")
    assert main_job == ".venv/bin/medxai audit"
    assert any(line.startswith(main_job) for line in ci), "CI must run the main job"


def test_the_docs_list_every_saliency_method_of_the_registry():
    from medxai.explain import method_summaries

    text = (ROOT / "docs" / "explain.md").read_text(encoding="utf-8")
    for name in method_summaries():
        assert f"| `{name}` |" in text, f"docs/explain.md methods table misses {name}"
