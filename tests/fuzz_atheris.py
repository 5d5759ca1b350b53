#!/usr/bin/env python
"""Coverage-guided fuzzing of embconv's readers with atheris (libFuzzer), run by hand.

Not collected by pytest (the name does not start with ``test_``). Set-up and use::

    .venv/bin/pip install atheris          # 3.0.0 installs on CPython 3.11 (manylinux wheel)
    .venv/bin/python tests/fuzz_atheris.py -max_total_time=600 -rss_limit_mb=2048 -timeout=10 [CORPUS_DIR]

Without a CORPUS_DIR the fixtures, the real models (when ../shared/real-models exists) and the
small files of the hostile corpus are copied into a fresh temporary corpus directory. Each input
is written to a temporary file and run through the same property as tests/test_fuzz.py
(tests/damage/harness.py): ``open_model_file`` + ``to_numpy()`` of every tensor, then
``converter.load`` + every table's arrays, each either succeeding or raising ``EmbconvError``
with exit code 1 or 3. Any other exception is a crash that libFuzzer reports and saves; time
and memory are bounded by libFuzzer's own ``-timeout`` and ``-rss_limit_mb`` (the harness's
SIGALRM deadline is not used: libFuzzer owns SIGALRM). The canary of the hostile seeds is checked
after every input.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script: make the tests package importable
    sys.path.insert(0, str(HERE.parent))

with atheris.instrument_imports(include=["converter"]):
    import converter  # noqa: F401
    import converter.loaders  # noqa: F401
    import converter.pickle  # noqa: F401

from tests.damage.harness import Outcome, Violation, run_stages  # noqa: E402
from tests.damage.mutate import CANARY, file_seeds, hostile_seeds  # noqa: E402

WORK = Path(tempfile.mkdtemp(prefix="embconv-atheris-"))
TARGET = WORK / "input.pth"


def test_one_input(data: bytes) -> None:
    """One input: refusals (EmbconvError 1/3) are mapped inside ``run_stages``; a Violation or
    any other exception propagates and libFuzzer records the input as a crash."""
    TARGET.write_bytes(data)
    run_stages(str(TARGET), Outcome(0, 0))
    if CANARY.exists():
        raise Violation("CANARY CREATED: a payload ran")


def _default_corpus() -> str:
    corpus = WORK / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(file_seeds() + hostile_seeds()):
        (corpus / f"{i:04d}{seed.suffix}").write_bytes(seed.data)
    return str(corpus)


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(_default_corpus())
    print(f"embconv atheris: inputs go to {TARGET}", file=sys.stderr)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
