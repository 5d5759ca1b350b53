"""The command line: argument parsing and output formatting only (design.md §4)."""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__, api
from .errors import EmbconvError, UsageError
from .ir import EmbeddingModel
from .ir import printable as ir_printable


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage + exits 2; keep it one line
        raise UsageError(message)


def printable(text: Any) -> str:
    """``str(text)`` as ``ir.printable`` escapes it (undecodable path bytes as ``\\xNN``, other lone
    surrogates as ``\\uDXXX``): paths in error lines, human output and --json ``path`` fields."""
    return ir_printable(str(text))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_escape_surrogate(m: re.Match) -> str:
    return f"\\u{ord(m.group(0)):04x}"


def dumps(value: Any, indent: int | None = 2) -> str:
    """JSON text that is always valid UTF-8: non-ASCII characters as they are, a lone surrogate
    (a token that is not valid Unicode, e.g. from an old pickle) as its ``\\udXXX`` escape, which
    JSON readers give back as that surrogate (Python: exactly)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _SURROGATE.sub(_json_escape_surrogate, text) if _SURROGATE.search(text) else text


def _say(*lines: Any) -> None:
    """Print human-readable lines on stdout, escaped with :func:`printable` (never an
    UnicodeEncodeError, whatever the locale's strictness)."""
    for line in lines:
        print(printable(line))


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="embconv", description="fastai learners → labelled embedding tables, read safely.")
    p.add_argument("--version", action="version", version=f"embconv {__version__}")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    s = sub.add_parser("scan", help="list every global a pickle names, and the verdict")
    s.add_argument("src")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    c = sub.add_parser("convert", help="write the embedding tables in one of the output formats (--to)")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--to", choices=api.output_formats(), help="output format (default: from DST's extension)")
    c.add_argument("--table", action="append", default=[], metavar="NAME", help="only this table (repeatable)")
    c.add_argument("--vocab", action="append", default=[], metavar="TABLE=SPEC",
                   help="a vocabulary the file lacks (see inspect --help)")
    c.add_argument("--dtype", default="float32", choices=["float32", "float16", "float64"],
                   help="float type of the written weights (default float32)")
    c.add_argument("--drop-unknown", action="store_true", help="word2vec: leave out the #na# (unknown) row")
    c.add_argument("--y-range", type=_y_range, metavar="LO,HI",
                   help="rating range for collab dot models whose file lacks it (inspect says so)")
    c.add_argument("--external-data", action="store_true",
                   help="ONNX: put the tables in DST.data beside the model (automatic above 512 MiB)")
    c.add_argument("--allow-unlabelled", action="store_true",
                   help="write tables that have no labels with numbered rows (otherwise refused)")
    c.add_argument("--force", action="store_true", help="replace existing output files")
    c.add_argument("--no-verify", action="store_true", help="skip reading the output back and comparing")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    c.add_argument("--json", action="store_true",
                   help="print what was written (files, tables, warnings) as JSON: schemas/convert-result.schema.json")
    _add_data_options(c)

    v = sub.add_parser("verify", help="prove that an output matches its source")
    v.add_argument("dst")
    v.add_argument("--against", required=True, metavar="SRC", help="the file DST was converted from")
    v.add_argument("--vocab", action="append", default=[], metavar="TABLE=SPEC",
                   help="the same --vocab given to convert")
    v.add_argument("--y-range", type=_y_range, metavar="LO,HI", help="the same --y-range given to convert")
    v.add_argument("--json", action="store_true",
                   help="print what was proved as JSON: schemas/verify-result.schema.json")
    _add_data_options(v)

    m = sub.add_parser("similar", help="the rows most like a token, by cosine similarity (the unknown row left out)")
    m.add_argument("src")
    m.add_argument("token")
    m.add_argument("--table", metavar="NAME", help="the table to search (default: the one whose vocabulary has TOKEN)")
    m.add_argument("-k", type=int, default=10, metavar="N", help="how many rows (default 10)")
    m.add_argument("--vocab", action="append", default=[], metavar="TABLE=SPEC",
                   help="a vocabulary the file lacks (see inspect --help)")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    _add_data_options(m)

    e = sub.add_parser("encode", help="a dataset's categorical columns → their vectors, as fastai maps them")
    e.add_argument("src")
    e.add_argument("data", help="the dataset: CSV (read as pandas reads it) or Parquet")
    e.add_argument("out", help="the encoded dataset: .csv or .parquet")
    e.add_argument("--columns", metavar="COL,…", help="only these tables / columns (TABLE=COL maps a table to a column)")
    e.add_argument("--vocab", action="append", default=[], metavar="TABLE=SPEC",
                   help="a vocabulary the file lacks (see inspect --help)")
    e.add_argument("--force", action="store_true", help="replace an existing OUT")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument("-q", "--quiet", action="store_true", help="no summary")
    _add_data_options(e, "--train-data")

    i = sub.add_parser("inspect", help="what is in this file: its embedding tables and which row is which")
    i.add_argument("src")
    i.add_argument("--json", action="store_true", help="print the manifest (with tokens) as JSON")
    i.add_argument("--vocab", action="append", default=[], metavar="TABLE=SPEC",
                   help="a vocabulary the file lacks: itos.pkl, tokens.txt, list.json, data.csv:column, export.pkl")
    i.add_argument("--tensors", action="store_true", help="list every tensor in the file instead of the tables")
    i.add_argument("--rows", type=int, default=4, metavar="N", help="rows shown per table (default 4)")
    _add_data_options(i)
    for command in sub.choices.values():  # --debug before or after the command: `embconv convert … --debug`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show a traceback on errors")
    return p


def _add_data_options(p: argparse.ArgumentParser, flag: str = "--data") -> None:
    g = p.add_argument_group("labels for a learn.save file, rebuilt from its training data as fastai built them")
    g.add_argument(flag, dest="training", metavar="FILE",
                   help="the DataFrame the model was trained on, as given to fastai (CSV read as pandas reads it, or "
                   "Parquet)")
    g.add_argument("--split", metavar="SPEC",
                   help="how fastai split it: seed=S[,valid_pct=P] (its random split; P defaults to 0.2) | "
                   "valid_idx=A:B[,C:D…] (the validation rows) | none (every row trained)")
    g.add_argument("--user", metavar="COL", help="collab: the user column (default: the first column)")
    g.add_argument("--item", metavar="COL", help="collab: the item column (default: the second column)")
    g.add_argument("--rating", metavar="COL", help="collab: the ratings, to check the labels (default: the third column)")
    g.add_argument("--cat", metavar="COL,…", help="tabular: cat_names as given to fastai, in order")
    g.add_argument("--cont", metavar="COL,…", help="tabular: cont_names as given to fastai (FillMissing's _na tables)")


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options as keywords of api.convert / verify / similar."""
    roles = {k: getattr(args, k) for k in ("user", "item", "rating", "cat", "cont") if getattr(args, k) is not None}
    if args.training is None:
        api.training_data(None, args.split, **roles)  # refuses --split etc. without --data
        return {}
    return {"data": args.training, "split": args.split, "roles": roles}


def _y_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants LO,HI (two numbers), got {text!r}") from None
    return lo, hi


def _cmd_scan(args: argparse.Namespace) -> int:
    report = api.scan(args.src)
    if args.json:
        print(dumps({
            "path": printable(report.path),
            "container": report.container,
            "verdict": report.verdict,
            "error": report.error,
            "notes": report.notes,
            "globals": [
                {"module": u.module, "name": u.name, "verdict": u.verdict, "offset": u.offset,
                 **({"reason": u.reason} if u.reason else {})}
                for u in report.globals
            ],
        }))
    else:
        _say(f"file:      {report.path}")
        _say(f"container: {report.container or 'unknown'}")
        counts: dict[tuple[str, str, str], int] = {}
        for u in report.globals:
            key = (u.module, u.name, u.verdict)
            counts[key] = counts.get(key, 0) + 1
        _say(f"globals:   {len(counts)} distinct")
        for (module, name, verdict), n in sorted(counts.items(), key=lambda kv: (kv[0][2] != "refused", kv[0])):
            times = f" ×{n}" if n > 1 else ""
            _say(f"  {verdict:<13} {module}.{name}{times}")
        for note in report.notes:
            _say(f"note:      {note}")
        _say(f"verdict:   {report.verdict}")
    if report.error:
        _error_line(report.error)
    return report.exit_code


def _cmd_convert(args: argparse.Namespace) -> int:
    if not args.json:
        return _convert(args, [])
    warnings: list[Any] = []
    try:
        return _convert(args, warnings)
    except Exception as e:
        if not isinstance(e, BrokenPipeError):
            _json_error(args, "embconv.convert-result", e)
        raise


def _convert(args: argparse.Namespace, warnings: list[Any]) -> int:
    def on_warning(w: Any) -> None:
        warnings.append(w)
        _print_warning(w)

    bar = _progress_bar(args.quiet)
    try:
        files = api.convert(args.src, args.dst, to=args.to, tables=args.table or None, vocab=args.vocab,
                            **_data_options(args), allow_unlabelled=args.allow_unlabelled,
                            on_warning=on_warning, force=args.force, verify=not args.no_verify,
                            dtype=args.dtype, drop_unknown=args.drop_unknown,
                            progress=bar, y_range=args.y_range,
                            **_writer_options(args))
    finally:
        if bar:
            bar.close()
    if args.json:
        print(dumps(_convert_result(args, files, warnings)))
        return 0
    if not args.quiet:
        verified = "written and verified" if not args.no_verify else "written (not verified)"
        _say(f"{verified}: {len(files)} file(s)")
        for f in files:
            _say(f"  {f}  ({f.stat().st_size:,} bytes)")
        hint = api.load_hint(args.dst, args.to)
        if hint:
            _say(f"load it with: {hint.format(path=files[0])}")
    return 0


RESULT_VERSION = 1  # of schemas/convert-result.schema.json and schemas/verify-result.schema.json


def _warning_json(w: Any) -> dict[str, Any]:
    """A warning as ``{"code", "table", "message"}`` (the manifest's form)."""
    code = getattr(w, "code", "note")
    table = getattr(w, "table", None)
    return {"code": code, "table": table, "message": printable(getattr(w, "message", w))}


def _file_entries(files: Sequence[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """(files, tables, format) of what a command wrote or checked: each file with its size, what it
    is (``output``: holds tables; ``sidecar``: word2vec's manifest; ``external-data``: ONNX tables
    beside the model) and the tables it holds, read back from the file itself."""
    entries: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    fmt: str | None = None
    for f in files:
        entry: dict[str, Any] = {"path": printable(f), "bytes": f.stat().st_size}
        if api.is_output(f):
            held = api.load(f)
            fmt = fmt or held.source.container
            entry["kind"] = "output"
            entry["format"] = held.source.container
            entry["tables"] = list(held.tables)
            tables += [{"name": t.name, "rows": t.rows, "dim": t.dim, "bias": t.bias_source is not None,
                        "labelled": t.vocab is not None, "file": printable(f)} for t in held.tables.values()]
        else:
            entry["kind"] = "sidecar" if f.name.endswith(".manifest.json") else "external-data"
            entry["tables"] = []
        entries.append(entry)
    return entries, tables, fmt


def _convert_result(args: argparse.Namespace, files: Sequence[Any], warnings: list[Any]) -> dict[str, Any]:
    entries, tables, fmt = _file_entries(files)
    return {"schema": "embconv.convert-result", "version": RESULT_VERSION, "ok": True,
            "source": printable(args.src), "destination": printable(args.dst), "format": fmt,
            "verified": not args.no_verify, "files": entries, "tables": tables,
            "warnings": [_warning_json(w) for w in warnings]}


def _json_error(args: argparse.Namespace, schema: str, e: BaseException) -> None:
    """With --json, a failed command still prints one JSON document on stdout (the error line
    goes to stderr as always, and the exit code is the documented one)."""
    if isinstance(e, EmbconvError):
        code, kind = e.exit_code, type(e).__name__
        message = str(e)
    else:  # what main() reports as an internal error, exit 3
        code, kind, message = 3, "InternalError", f"{type(e).__name__}: {e}"
    print(dumps({"schema": schema, "version": RESULT_VERSION, "ok": False,
                 "error": {"exit_code": code, "type": kind, "message": printable(" ".join(message.split()))}}))


def _writer_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"external_data": True} if args.external_data else {}


def _print_warning(warning: Any) -> None:
    print(printable(f"warning: {warning}"), file=sys.stderr)


def _progress_bar(quiet: bool) -> Any:
    """tqdm bars on stderr for long conversions, one per table and phase (``writing userId``,
    ``reading back out.vec``, ``verifying userId``, ``flushing to disk`` …), redrawn every half
    second so the elapsed time keeps moving even where a phase cannot count rows; none with -q
    or when stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    class _Bars:
        """A :class:`converter.saving.PhasedProgress` drawing one tqdm bar per phase."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.lock = threading.Lock()
            self.stop = threading.Event()
            threading.Thread(target=self._redraw, name="embconv-progress", daemon=True).start()

        def _redraw(self) -> None:
            while not self.stop.wait(0.5):
                self.tick()

        def phase(self, label: str, total: int | None) -> None:
            with self.lock:
                if self.bar is not None:
                    self.bar.close()
                counted = bool(total)
                self.bar = tqdm(total=total if counted else None, desc=label, unit="row" if counted else "",
                                unit_scale=counted, file=sys.stderr, leave=False, mininterval=0.25,
                                dynamic_ncols=True, bar_format=None if counted else "{desc}: {elapsed}")

        def __call__(self, done: int, total: int) -> None:
            if self.bar is None:
                self.phase("writing", total)
            with self.lock:
                if self.bar.total != total:
                    self.bar.total = total
                self.bar.update(done - self.bar.n)

        update = __call__

        def tick(self) -> None:
            with self.lock:
                if self.bar is not None:
                    self.bar.refresh()

        def close(self) -> None:
            self.stop.set()
            with self.lock:
                if self.bar is not None:
                    self.bar.close()
                    self.bar = None

    return _Bars()


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        result = api.verify(args.dst, args.against, vocab=args.vocab, y_range=args.y_range, **_data_options(args))
        if args.json:
            entries, tables, fmt = _file_entries(result.files)
            print(dumps({"schema": "embconv.verify-result", "version": RESULT_VERSION, "ok": True,
                         "output": printable(args.dst), "against": printable(args.against), "format": fmt,
                         "files": entries, "tables": tables, "table_count": result.tables, "rows": result.rows,
                         "proved": list(_PROVED)}))
            return 0
    except Exception as e:
        if args.json and not isinstance(e, BrokenPipeError):
            _json_error(args, "embconv.verify-result", e)
        raise
    for p in result.files:
        _say(f"verified: {p} matches {args.against}")
    _say(f"ok: {result.tables} table(s), {result.rows:,} rows")
    return 0


# What ``verify`` compares, for every table the output holds (verify.py): the verify result's "proved".
_PROVED = ("tables", "shapes", "weights", "biases", "tokens", "unknown_index", "model_kind", "y_range")


def _cmd_similar(args: argparse.Namespace) -> int:
    table, rows = api.similar(args.src, args.token, table=args.table, k=args.k, vocab=args.vocab,
                              **_data_options(args))
    if args.json:
        print(dumps({"table": table, "token": args.token,
                     "similar": [{"token": str(t), "similarity": s} for t, s in rows]}))
        return 0
    _say(f"rows of {table} most like {args.token!r} (cosine):")
    width = max((len(repr(str(t))) for t, _ in rows), default=0)
    for t, sim in rows:
        _say(f"  {str(t)!r:<{width}}  {sim: .4f}")
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    opts = _data_options(args)
    report = api.encode_file(args.src, args.data, args.out, columns=args.columns, vocab=args.vocab, force=args.force,
                             training=opts.get("data"), split=opts.get("split"), roles=opts.get("roles"))
    if args.json:
        print(dumps(report.to_json()))
        return 0
    if not args.quiet:
        _say(f"encoded: {report.rows:,} rows of {args.data} → {args.out}")
        for c in report.columns:
            cols = f"{c.outputs[0]} … {c.outputs[-1]}" if c.outputs else "-"
            _say(f"  {c.column} → {cols} ({c.dim} numbers): {c.unseen:,} unseen, {c.missing:,} missing")
        for w in report.warnings:
            _say(f"warning: {w}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    if args.tensors:
        return _inspect_tensors(args)
    opts = _data_options(args)
    model = api.load(args.src, vocab=args.vocab, data=opts.get("data"), split=opts.get("split"),
                     **opts.get("roles", {}))
    if args.json:
        manifest = model.manifest(include_tokens=True)
        manifest["source"]["path"] = printable(manifest["source"]["path"])
        print(dumps(manifest))
        return 0
    _say(format_model(model, rows=args.rows))
    return 0


_PLURAL = {"user": "users", "item": "items", "category": "categories", "token": "tokens"}
_ARTIFACTS = {"export": "a learner export (model + data processing)", "save": "learn.save weights (+ optimizer)",
              "encoder": "a saved text encoder", "state-dict": "bare weights (a state dict)",
              "embconv-output": "an embconv output"}
_KINDS = {"collab-dot": "collaborative filtering, dot product", "collab-nn": "collaborative filtering, neural net",
          "tabular": "tabular", "text-lm": "text language model", "text-classifier": "text classifier",
          "unknown": "unknown"}


def format_model(model: EmbeddingModel, rows: int = 4) -> str:
    """What a person needs to know about a model, without knowing what a state dict is."""
    src = model.source
    out = [f"file:       {src.path} ({src.size:,} bytes, {src.container})"]
    made_by = api.generation_label(src.generation)
    what = _ARTIFACTS.get(src.artifact, src.artifact)
    out.append(f"written by: {made_by}; {what}")
    if src.model_class:
        out.append(f"model:      {src.model_class}")
    kind = _KINDS.get(model.model.kind, model.model.kind)
    yr = f"; predictions scaled to {list(model.model.y_range)}" if model.model.y_range else ""
    out.append(f"kind:       {kind}{yr}")
    out.append(f"tables:     {len(model.tables)}")
    for t in model.tables.values():
        out.append("")
        out.append(f"  {t.name}  ({_PLURAL.get(t.role, t.role)}): {t.rows:,} rows × {t.dim} numbers, stored as {t.source_dtype}")
        keys = t.weight_key + (f" (also {', '.join(t.tied_keys)})" if t.tied_keys else "")
        out.append(f"    from:       {keys}" + (f", bias {t.bias_key}" if t.bias_key else ""))
        if t.vocab is None:
            out.append("    row labels: none in the file — rows are numbered 0…; supply them with --vocab")
            continue
        v = t.vocab
        unk = f"; unseen ids → row {v.unknown_index}" if v.unknown_index is not None else "; no row for unseen ids"
        source, _, check = v.source.partition("; ratings check: ")
        out.append(f"    row labels: {len(v):,} from {source}{unk}")
        if check:
            out.append(f"    checked:    {check}")
        shown = list(range(min(rows, len(v))))
        if len(v) > rows:
            shown.append(len(v) - 1)
        for i in shown:
            if i == len(v) - 1 and len(v) > rows + 1:
                out.append("      …")
            mark = "   ← unknown/missing" if i == v.unknown_index else ""
            out.append(f"      row {i:>{len(str(len(v)))}}: {v.strings[i]!r}{mark}")
    if model.warnings:
        out.append("")
        out.append("warnings:")
        out.extend(f"  - {w}" for w in model.warnings)
    return "\n".join(out)


def _inspect_tensors(args: argparse.Namespace) -> int:
    listing = api.inspect_tensors(args.src)
    if args.json:
        print(dumps({**listing, "path": printable(listing["path"])}))
        return 0
    tensors = listing["tensors"]
    _say(f"file:      {listing['path']} ({listing['size']:,} bytes)")
    _say(f"container: {listing['container']}")
    _say(f"top level: {listing['top_level']}")
    _say(f"tensors:   {len(tensors)}")
    width = max((len(t["path"]) for t in tensors), default=0)
    for t in tensors:
        _say(f"  {t['path']:<{width}}  {t['dtype']:<8} {t['shape']}")
    for w in listing["warnings"]:
        _say(f"warning:   {w}")
    return 0


def _error_line(message: str) -> None:
    print(printable(f"embconv: error: {' '.join(str(message).split())}"), file=sys.stderr)


def _subject(args: Any) -> str:
    """The file a command is about, for error lines (``verify`` names its output)."""
    return getattr(args, "src", None) or getattr(args, "dst", None) or ""


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) asking embconv to stop: unwinds like Ctrl-C, so every
    staging folder is removed on the way out; the exit status is 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _on_stop_signal(signum: int, _frame: Any) -> None:
    # Later signals are ignored: the cleanup this one starts must run to its end (SIGKILL still works).
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def _interrupted(e: BaseException) -> int:
    signum = getattr(e, "signum", getattr(signal, "SIGINT", 2))
    name = "" if signum == getattr(signal, "SIGINT", 2) else f" ({signal.Signals(signum).name})"
    try:
        print(f"embconv: interrupted{name}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # SIGHUP: the terminal may be gone
        pass
    return 128 + signum


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``embconv`` command; returns the exit code. SIGINT, SIGTERM and SIGHUP
    stop it cleanly (staging removed, one line, exit 128 + the signal's number)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _on_stop_signal) for s in _STOP_SIGNALS} if in_main else {}
    try:
        try:
            return _main(argv)
        except KeyboardInterrupt as e:  # also one raised inside _main's own error handling
            return _interrupted(e)
    finally:
        try:
            for s, h in previous.items():
                # As a program (argv None) the work is done: a late Ctrl-C must not print a traceback
                # while the interpreter shuts down; called from Python, the caller's handlers come back.
                signal.signal(s, signal.SIG_IGN if argv is None else (h if h is not None else signal.SIG_DFL))
        except KeyboardInterrupt:
            pass


def _main(argv: Sequence[str] | None) -> int:
    parser = _build_parser()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        if args.command is None:  # bare `embconv`: the usage and the commands on stderr, exit 2 (usage error)
            parser.print_help(sys.stderr)
            return UsageError.exit_code
        handler: Any = {"scan": _cmd_scan, "inspect": _cmd_inspect, "convert": _cmd_convert,
                        "verify": _cmd_verify, "similar": _cmd_similar, "encode": _cmd_encode}[args.command]
        return handler(args)
    except EmbconvError as e:
        if debug:
            traceback.print_exc()
        src = _subject(locals().get("args"))
        _error_line(str(e) if e.path or not src else f"{src}: {e.message}")
        return e.exit_code
    except BrokenPipeError:
        return 0
    except RecursionError:
        if debug:
            traceback.print_exc()
        _error_line(f"{_subject(locals().get('args'))}: input nests too deeply (limit)")
        return 3
    except MemoryError:
        src = _subject(locals().get("args"))
        _error_line(f"{src}: needs more memory than this machine allows (limit)")
        return 3
    except Exception as e:  # a bug in embconv: still one line, exit 3, traceback with --debug
        if debug:
            traceback.print_exc()
        src = _subject(locals().get("args"))
        _error_line(f"{src}: internal error ({type(e).__name__}: {e}); rerun with --debug and report it")
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
