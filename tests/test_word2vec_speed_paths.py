"""The fast paths of word2vec text: the line assembly of _floatfmt (byte-identical to the
plain per-row method) and the text parse of _LazyRows (identical to the exact path, errors
still name the row)."""

from __future__ import annotations

import numpy as np
import pytest

import converter.writers.word2vec as w2v
from converter.errors import UnreadableInputError
from converter.writers import _floatfmt, read_output

ODD = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-4, -1e-4, 999.0, -999.0, 998.99994, 1e-45,
                3.4028235e38, 9e37, -9e37, 1.1754944e-38, 7.038531e-26, 1e-5, 12345.0], dtype=np.float32)


def _reference_lines(tokens: list[bytes], rows: np.ndarray) -> bytes:
    """The plain method: each value by itself (orjson's text in the fast range, the checked repr
    elsewhere), one line per row."""
    out = []
    for tok, row in zip(tokens, np.ascontiguousarray(rows, dtype="<f4"), strict=True):
        vals = []
        for v in row:
            a = abs(float(v))
            if v == 0 or (np.float32(1e-4) <= a < 999.0):
                vals.append(_floatfmt.orjson.dumps(np.array([v]), option=_floatfmt.orjson.OPT_SERIALIZE_NUMPY)[1:-1])
            else:
                vals.append(_floatfmt.checked_repr(v))
        out.append(tok + b" " + b" ".join(vals) + b"\n")
    return b"".join(out)


@pytest.mark.skipif(_floatfmt.orjson is None, reason="orjson is not installed")
@pytest.mark.parametrize("seed", range(6))
def test_lines_match_the_per_value_method(seed):
    rng = np.random.default_rng(seed)
    n, dim = int(rng.integers(1, 300)), int(rng.choice([1, 2, 5, 33, 128]))
    if seed % 3 == 0:
        rows = rng.integers(0, 2**32, size=(n, dim), dtype=np.uint64).astype(np.uint32).view(np.float32)
    else:
        rows = (rng.standard_normal((n, dim)) * 0.05).astype(np.float32)
        hit = rng.random((n, dim)) < 0.1
        rows[hit] = rng.choice(ODD, size=int(hit.sum()))
    odd_keys = [b"a,b", b"[x]", b"9e+37", b"e", b"\xc3\xa9", b"] [", b""]
    tokens = [b"k%d" % i if rng.random() < 0.7 else odd_keys[int(rng.integers(len(odd_keys)))] for i in range(n)]
    assert _floatfmt.format_rows(tokens, rows) == _reference_lines(tokens, rows)
    assert _floatfmt.format_values(rows[0]) == _reference_lines([b""], rows[:1])[1:-1]
    with pytest.raises(ValueError):
        _floatfmt.format_rows(tokens[:-1] if n > 1 else tokens + [b"x"], rows)


def _exact(data: bytes, rel: np.ndarray, dim: int) -> np.ndarray | None:
    """The plain parse of the same lines: each cut at its first space, joined, np.fromstring."""
    return w2v._parse_lines([data[a:b].rstrip(b"\n") for a, b in zip(rel[:-1].tolist(), rel[1:].tolist())], dim)


def test_spaces_per_line():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a = rng.choice(np.array([32, 49, 10, 46], dtype=np.uint8), size=int(rng.integers(1, 300)))
        rel = np.unique(np.concatenate([[0, a.size], rng.integers(0, a.size + 1, size=5)])).astype(np.int64)
        expected = [int(np.count_nonzero(a[x:y] == 32)) for x, y in zip(rel[:-1], rel[1:])]
        assert w2v._spaces_per_line(a, rel).tolist() == expected


@pytest.mark.parametrize("seed", range(4))
def test_parse_text_matches_the_exact_path(seed):
    rng = np.random.default_rng(seed)
    tokens = ["0.5", "-0.25", "1e-05", "nan", "-inf", "7", "-0", "+1.5", ".5", "5.", "0.000100000005", "3.4028235e+38",
              "1_0", "x", "1.5.5", "", "1e400"]
    for _ in range(300):
        dim = int(rng.integers(1, 5))
        lines = []
        for i in range(int(rng.integers(1, 6))):
            vals = [str(rng.choice(tokens)) if rng.random() < 0.3 else repr(float(rng.standard_normal()))
                    for _ in range(dim + int(rng.choice([0, 0, 0, 1, -1])))]
            sep = " " if rng.random() < 0.95 else "  "
            end = rng.choice(["\n"] * 6 + [" \n", "\r\n", "\t\n"])
            lines.append((rng.choice([f"k{i}", "1.5", "-", "é"]) + " " + sep.join(vals) + end).encode())
        data = b"".join(lines)
        rel = np.cumsum([0] + [len(x) for x in lines]).astype(np.int64)
        got, ref = w2v._parse_text(data, rel, dim), _exact(data, rel, dim)
        if got is not None:
            assert ref is not None and got.tobytes() == ref.tobytes(), data
        elif ref is not None:  # it may leave odd lines to the exact path, but not plain ones
            assert any(x.endswith((b"\r\n", b"\t\n")) or b"  " in x for x in lines), data


def test_a_row_of_blanks_is_not_a_value(tmp_path):
    # np.fromstring reads blanks alone as [-1.]: such a row must be an error, not -1
    for text in (b"2 1\na 1.5\nk \n", b"2 1\na 1.5\nk \t\n"):
        path = tmp_path / "blank.vec"
        path.write_bytes(text)
        rows = read_output(path).tables["blank"].weight_source
        assert rows.rows(0, 1).tolist() == [[1.5]]
        with pytest.raises(UnreadableInputError, match="row 1"):
            rows.rows(1, 2)


def test_keys_are_the_lines_up_to_the_first_space(tmp_path):
    body = [b"a 1 2", b"b\t 3 4", b"c  5 6", "é 7 8".encode(), b"d 9 10\r", b"e 11 12"]
    for header, lines in ((b"6 2\n", body), (b"3 0\n", [b"x", b"", b"y z"])):
        path = tmp_path / "k.vec"
        path.write_bytes(header + b"\n".join(lines) + b"\n")
        lazy = w2v.read(path, binary=False).tables["k"].weight_source
        assert lazy.keys(0, len(lines)) == [x.split(b" ", 1)[0].decode() for x in lines]
        path.write_bytes(header + b"\n".join(lines))  # the last line without its newline
        lazy = w2v.read(path, binary=False).tables["k"].weight_source
        assert lazy.keys(1, len(lines)) == [x.split(b" ", 1)[0].decode() for x in lines[1:]]
