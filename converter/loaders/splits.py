"""How the user says fastai split the training data (``--split``), and the two random number
streams fastai drew its random splits from, reproduced with numpy (spec fastai-formats §11.1).

Which generation used which stream is each generation's knowledge (``Generation.training_rows``);
this module only parses the description and reproduces the permutations bit for bit."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import UnreadableInputError, UsageError

DEFAULT_VALID_PCT = 0.2  # from_df's default in fastai 1 and 2
# torch's CPU randperm draws one 32-bit number per step below this size (n < 2^32 / 20); above it
# (torch ≥ 2025) it draws 64-bit numbers with another algorithm, not reproduced here.
TORCH_RANDPERM_LIMIT = 214_748_364


@dataclass(frozen=True)
class Split:
    """``kind``: ``seed`` (a seeded random split: ``seed``, ``valid_pct``), ``valid_idx`` (the
    validation rows, as half-open ``ranges``), ``none`` (every row is a training row) or
    ``unknown`` (not given: only a vocabulary every value of the data has a row in can be
    proved)."""

    kind: str
    seed: int | None = None
    valid_pct: float = DEFAULT_VALID_PCT
    ranges: tuple[tuple[int, int], ...] = ()

    def __str__(self) -> str:
        if self.kind == "seed":
            pct = "" if self.valid_pct == DEFAULT_VALID_PCT else f",valid_pct={self.valid_pct:g}"
            return f"seed={self.seed}{pct}"
        if self.kind == "valid_idx":
            return "valid_idx=" + ",".join(f"{a}:{b}" if b != a + 1 else str(a) for a, b in self.ranges)
        return self.kind

    def valid_mask(self, n: int) -> np.ndarray:
        """For ``valid_idx``: True at the validation rows of a frame of ``n`` rows."""
        mask = np.zeros(n, dtype=bool)
        for a, b in self.ranges:
            if b > n:
                raise UnreadableInputError(f"--split {self}: the data has only {n:,} rows")
            mask[a:b] = True
        return mask


_RANGE = re.compile(r"(\d+)(?::(\d+))?")


def parse_split(spec: str | Split | None) -> Split:
    """A ``Split`` from ``seed=S[,valid_pct=P]``, ``valid_idx=A:B[,C:D…]`` (half-open ranges;
    a single row ``I`` too), ``none``, or None (not given). UsageError for anything else."""
    if spec is None:
        return Split("unknown")
    if isinstance(spec, Split):
        return spec
    text = str(spec).strip()
    if text == "none":
        return Split("none")
    if text.startswith("valid_idx="):
        ranges: list[tuple[int, int]] = []
        for part in text[len("valid_idx="):].split(","):
            m = _RANGE.fullmatch(part.strip())
            if not m:
                raise UsageError(f"--split {text}: {part!r} is not a row A or a range A:B")
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) is not None else a + 1
            if b <= a:
                raise UsageError(f"--split {text}: the range {part} is empty")
            ranges.append((a, b))
        return Split("valid_idx", ranges=tuple(ranges))
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("seed", "valid_pct") or key.strip() in fields:
            raise UsageError(f"--split wants seed=S[,valid_pct=P], valid_idx=A:B[,C:D…] or none, got {text!r}")
        fields[key.strip()] = value.strip()
    if "seed" not in fields:
        raise UsageError(f"--split {text}: a random split needs its seed (seed=S); fastai's unseeded split "
                         "cannot be rebuilt")
    try:
        seed = int(fields["seed"])
        valid_pct = float(fields.get("valid_pct", DEFAULT_VALID_PCT))
    except ValueError:
        raise UsageError(f"--split {text}: seed must be an integer and valid_pct a number") from None
    if seed < 0 or not 0.0 <= valid_pct < 1.0:
        raise UsageError(f"--split {text}: wants seed ≥ 0 and 0 ≤ valid_pct < 1")
    return Split("seed", seed=seed, valid_pct=valid_pct)


def numpy_permutation(n: int, seed: int) -> np.ndarray:
    """``np.random.seed(seed); np.random.permutation(n)``: numpy's legacy stream is frozen (NEP
    19), so this is what any numpy of any year gave."""
    return np.random.RandomState(seed).permutation(n)


def torch_randperm(n: int, seed: int) -> np.ndarray:
    """``torch.manual_seed(seed); torch.randperm(n)`` on the CPU, without torch: the
    Fisher–Yates shuffle torch runs over one MT19937 stream seeded with ``seed & 0xffffffff``
    (``random() % (n - i)`` at step i), whose 32-bit outputs numpy's legacy ``RandomState``
    gives in the same order."""
    if n >= TORCH_RANDPERM_LIMIT:
        raise UnreadableInputError(f"a random split of {n:,} rows: torch permutes more than "
                                   f"{TORCH_RANDPERM_LIMIT:,} rows another way, which embconv does not reproduce")
    perm = np.arange(n, dtype=np.int64)
    if n < 2:
        return perm
    draws = np.random.RandomState(seed & 0xFFFFFFFF).randint(0, 2**32, size=n - 1, dtype=np.uint64)
    steps = (draws % np.arange(n, 1, -1, dtype=np.uint64)).astype(np.int64) + np.arange(n - 1, dtype=np.int64)
    # The swaps depend on each other; a plain loop over Python ints is the fast way in pure numpy.
    p = perm.tolist()
    for i, j in enumerate(steps.tolist()):
        p[i], p[j] = p[j], p[i]
    return np.asarray(p, dtype=np.int64)
