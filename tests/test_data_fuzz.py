"""Property tests of the dataset readers: whatever bytes a user's files hold, `prepare_dataset`
either raises one `MmsrarecError` (the CLI's one `error:` line) or writes a dataset that loads,
with finite timestamps and images inside the dataset folder. Never another exception."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.errors import MmsrarecError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["m1", "m2", "m3", "../x.png", "/etc/passwd", "1e400", "NaN", "pic.png"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=4)
edge_values = {  # values that are close to valid, most likely to slip through
    "timestamp": st.one_of(
        st.sampled_from([math.inf, -math.inf, math.nan, True, False, "1e400", "nan", 10**400]),
        values,
    ),
    "image": st.one_of(st.sampled_from(["pic.png", "../pic.png", "/etc/passwd", "."]), values),
}
KEYS = ["item_id", "title", "description", "image", "user_id", "timestamp", "extra"]
records = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def near_valid_rows(draw: st.DrawFn) -> tuple[list[dict], list[dict]]:
    """A small valid catalog and log (four users of five items), then a few fields replaced."""
    catalog = [{"item_id": f"m{i}", "title": f"T{i}"} for i in range(1, 9)]
    log = [
        {"user_id": f"u{u}", "item_id": f"m{1 + (u + s) % 8}", "timestamp": 10 * s}
        for u in range(4)
        for s in range(5)
    ]
    for _ in range(draw(st.integers(0, 3))):
        rows = draw(st.sampled_from([catalog, log]))
        row = rows[draw(st.integers(0, len(rows) - 1))]
        key = draw(st.sampled_from(KEYS))
        row[key] = draw(edge_values.get(key, values))
    return catalog, log


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@st.composite
def jsonl_folders(draw: st.DrawFn) -> dict[str, bytes]:
    kind = draw(st.sampled_from(["bytes", "records", "near-valid"]))
    if kind == "bytes":
        files = {name: draw(st.binary(max_size=200)) for name in ("catalog", "interactions")}
    elif kind == "records":
        files = {
            name: jsonl(draw(st.lists(records, max_size=6))) for name in ("catalog", "interactions")
        }
    else:
        catalog, log = near_valid_rows(draw)
        files = {"catalog": jsonl(catalog), "interactions": jsonl(log)}
    if kind != "near-valid" and draw(st.booleans()):  # cut or corrupt one file's bytes
        name = draw(st.sampled_from(sorted(files)))
        data = files[name]
        cut = draw(st.integers(0, len(data)))
        files[name] = data[:cut] + draw(st.binary(max_size=8)) + data[cut:]
    return {f"{name}.jsonl": data for name, data in files.items()}


@st.composite
def atomic_folders(draw: st.DrawFn) -> dict[str, bytes]:
    def table(columns: list[str], n_rows: int) -> bytes:
        cells = st.one_of(st.text(max_size=8), st.sampled_from(["m1", "m2", "1", "nan", "1e400"]))
        lines = ["\t".join(columns)]
        for _ in range(n_rows):
            lines.append("\t".join(draw(st.lists(cells, min_size=0, max_size=len(columns) + 1))))
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")

    item_cols = draw(st.sampled_from([["item_id:token", "title:token_seq"], ["title:token_seq"]]))
    inter_cols = draw(
        st.sampled_from(
            [
                ["user_id:token", "item_id:token", "timestamp:float"],
                ["user_id:token", "item_id:token"],
            ]
        )
    )
    files = {"shop.item": table(item_cols, 4), "shop.inter": table(inter_cols, 8)}
    if draw(st.booleans()):
        files["shop.inter"] = draw(st.binary(max_size=120))
    return files


def check(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        (source / "pic.png").write_bytes(b"\x89PNG")
        for name, data in files.items():
            (source / name).write_bytes(data)
        try:
            folder, _ = prepare_dataset(source, Path(tmp) / "out", negatives=1)
        except MmsrarecError as exc:
            assert "\n" not in str(exc)  # one line
            return
        dataset = load_dataset(folder)
        assert dataset.n_items > 0 and dataset.sequences
        for row in (folder / "sequences.jsonl").read_text().splitlines():
            assert all(math.isfinite(t) for t in json.loads(row)["timestamps"])
        for item in dataset.items:
            assert item.image is None or Path(item.image).is_relative_to(source.resolve())


@FUZZ
@given(jsonl_folders())
def test_any_jsonl_input_gives_a_dataset_or_one_error(files: dict[str, bytes]) -> None:
    check(files)


@FUZZ
@given(atomic_folders())
def test_any_atomic_input_gives_a_dataset_or_one_error(files: dict[str, bytes]) -> None:
    check(files)
