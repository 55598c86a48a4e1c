"""Recurrent layers in the WHILE-loop form: 4,000 steps and per-example sequence_lens against ONNX Runtime, both
directions, both layouts, initial states; and the unrolled form kept at and below UNROLL_MAX_STEPS."""
from __future__ import annotations

import numpy as np
import pytest

from _differential import as_model, assert_converts, differential
from edgekit.converters.tflite import compile_onnx
from edgekit.converters.tflite.lowerings.recurrent import LOOP_CHUNK_STEPS, UNROLL_MAX_STEPS, UNROLL_MAX_WEIGHT_BYTES
from test_ops import Row, f32

LONG, B, I, H = 4000, 2, 3, 4  # steps, batch, input features, hidden
#: the main graph's ops (the cell runs in the body): 4,000 steps are chunked into a chain of loops
LOOP_OPS = {"FULLY_CONNECTED", "FILL", "WHILE", "RESHAPE", "SPLIT_V", "CONCATENATION"}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OUTS = {"LSTM": "y, yh, yc", "GRU": "y, yh", "RNN": "y, yh"}


def weights(op: str, dirs: int = 1) -> dict:
    """Recurrent weights small enough that the recurrence is contracting: 4,000 steps do not amplify rounding."""
    gates = GATES[op]
    return {"w": f32(dirs, gates * H, I), "r": f32(dirs, gates * H, H, scale=0.3), "bb": f32(dirs, 2 * gates * H)}


def typed(op: str) -> str:
    return ", ".join(f"float {o}" for o in OUTS[op].split(", "))


ROWS = [
    Row("LSTM", 14, "y, yh, yc = LSTM <hidden_size=4> (x, w, r, bb)", f"float[{LONG},{B},{I}] x", LOOP_OPS,
        weights("LSTM"), id="4000_steps", outputs=typed("LSTM")),
    Row("LSTM", 14, "y, yh, yc = LSTM <hidden_size=4, direction=\"bidirectional\", clip=0.8> (x, w, r, bb, , h0, c0, p)",
        f"float[{LONG},{B},{I}] x, float[2,{B},{H}] h0, float[2,{B},{H}] c0",
        LOOP_OPS - {"RESHAPE"} | {"UNPACK", "REVERSE_V2", "PACK"}, {**weights("LSTM", 2), "p": f32(2, 3 * H)},
        id="4000_steps_bidirectional_clip_peepholes", outputs=typed("LSTM")),
    Row("GRU", 14, "y, yh = GRU <hidden_size=4, linear_before_reset=1> (x, w, r, bb)", f"float[{LONG},{B},{I}] x",
        LOOP_OPS, weights("GRU"), id="4000_steps_linear_before_reset", outputs=typed("GRU")),
    Row("GRU", 14, "y, yh = GRU <hidden_size=4, direction=\"bidirectional\"> (x, w, r, bb, , h0)",
        f"float[{LONG},{B},{I}] x, float[2,{B},{H}] h0", LOOP_OPS - {"RESHAPE"} | {"UNPACK", "REVERSE_V2", "PACK"},
        weights("GRU", 2), id="4000_steps_bidirectional", outputs=typed("GRU")),
    Row("RNN", 14, "y, yh = RNN <hidden_size=4, direction=\"reverse\"> (x, w, r, bb)", f"float[{LONG},{B},{I}] x",
        LOOP_OPS | {"REVERSE_V2"}, weights("RNN"), id="4000_steps_reverse", outputs=typed("RNN")),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.op}-{r.id}" for r in ROWS])
def test_recurrent_while_op(row):
    assert_converts(row.text(), expect_ops=row.ops)


# ------------------------------------------------------------------ per-example sequence_lens
LENS = np.asarray([7, 2, 5], np.int32)  # rows shorter than the 7 steps, and one full


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_per_example_sequence_lens_as_an_input(op, direction):
    """Rows past their length keep their state and emit zeros; a reverse row starts at its own last step."""
    dirs = 2 if direction == "bidirectional" else 1
    text = Row(op, 14, f"{OUTS[op]} = {op} <hidden_size=4, direction=\"{direction}\"> (x, w, r, bb, lens, h0)",
               f"float[7,3,{I}] x, int32[3] lens, float[{dirs},3,{H}] h0", None, weights(op, dirs),
               outputs=typed(op)).text()
    compiled = assert_converts(text, inputs={"x": f32(7, 3, I), "lens": LENS, "h0": f32(dirs, 3, H)})
    assert "WHILE" in compiled.op_histogram  # short, but only the loop masks rows


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_empty_rows_end_in_zero_states(op):
    """A row of length 0: ONNX Runtime's Y_h (and Y_c) are zeros, not the initial state."""
    initial = ", h0, c0" if op == "LSTM" else ", h0"
    text = Row(op, 14, f"{OUTS[op]} = {op} <hidden_size=4, direction=\"bidirectional\"> (x, w, r, bb, lens{initial})",
               f"float[5,2,{I}] x, int32[2] lens, float[2,2,{H}] h0" + (f", float[2,2,{H}] c0" if op == "LSTM" else ""),
               None, weights(op, 2), outputs=typed(op)).text()
    feeds = {"x": f32(5, 2, I), "lens": np.asarray([0, 4], np.int32), "h0": f32(2, 2, H) + 1}
    if op == "LSTM":
        feeds["c0"] = f32(2, 2, H) + 1
    assert_converts(text, inputs=feeds)


def test_run_time_sequence_lens_beyond_the_sequence_are_clamped():
    """A length over the sequence (ONNX Runtime refuses it) runs as the full sequence, never reads past it."""
    from edgekit.runtimes import load
    text = Row("GRU", 14, "y, yh = GRU <hidden_size=4, direction=\"bidirectional\"> (x, w, r, bb, lens)",
               f"float[5,2,{I}] x, int32[2] lens", None, weights("GRU", 2), outputs=typed("GRU")).text()
    x = f32(5, 2, I)
    with load(compile_onnx(as_model(text)).to_bytes(), runtime="litert") as lite:
        full = lite.run({"x": x, "lens": np.asarray([5, 5], np.int32)})
        over = lite.run({"x": x, "lens": np.asarray([500, 5], np.int32)})
    for name in full:
        np.testing.assert_array_equal(over[name], full[name], err_msg=name)


def test_constant_sequence_lens_long_sequence():
    text = Row("GRU", 14, "y, yh = GRU <hidden_size=4, direction=\"bidirectional\"> (x, w, r, bb, lens)",
               f"float[{LONG},2,{I}] x", None, {**weights("GRU", 2), "lens": np.asarray([LONG, 1234], np.int32)},
               outputs=typed("GRU")).text()
    assert_converts(text, expect_ops=LOOP_OPS - {"RESHAPE"} | {"RESHAPE", "SUB", "REVERSE_SEQUENCE", "PACK"})


def test_full_constant_sequence_lens_stay_unrolled():
    text = Row("RNN", 14, "y, yh = RNN <hidden_size=4> (x, w, r, bb, lens)", f"float[5,2,{I}] x", None,
               {**weights("RNN"), "lens": np.asarray([5, 5], np.int32)}, outputs=typed("RNN")).text()
    compiled = assert_converts(text)
    assert "WHILE" not in compiled.op_histogram


@pytest.mark.parametrize("lens", [[0, 3], [3, 9]])
def test_constant_sequence_lens_out_of_range_are_refused(lens):
    from edgekit.errors import UnsupportedModelError
    text = Row("RNN", 14, "y = RNN <hidden_size=4> (x, w, r, bb, lens)", f"float[5,2,{I}] x", None,
               {**weights("RNN"), "lens": np.asarray(lens, np.int32)}).text()
    with pytest.raises(UnsupportedModelError, match=r"sequence_lens .* outside 1\.\.5"):
        compile_onnx(as_model(text))


# ------------------------------------------------------------------ layout=1 (batch first)
@pytest.mark.parametrize("op,extra", [("LSTM", ""), ("GRU", ", linear_before_reset=1"), ("RNN", "")])
@pytest.mark.parametrize("steps,with_lens", [(UNROLL_MAX_STEPS + 1, False), (6, True)])
def test_batch_first_layout_in_the_loop(op, extra, steps, with_lens):
    """layout=1 against ONNX Runtime on the same recurrence in layout 0 between transposes (ORT has no layout=1)."""
    outs = OUTS[op].split(", ")
    lens = "lens" if with_lens else ""
    inputs = f"float[{B},{steps},{I}] x, float[{B},2,{H}] h0" + (f", int32[{B}] lens" if with_lens else "")
    w = weights(op, 2)
    batch_first = Row(op, 14, f"{', '.join(outs)} = {op} <hidden_size=4, direction=\"bidirectional\", layout=1{extra}> "
                      f"(x, w, r, bb, {lens}, h0)", inputs, None, w, outputs=typed(op)).text()
    seq_first = Row(op, 14, f"xt = Transpose <perm=[1,0,2]> (x)\nht = Transpose <perm=[1,0,2]> (h0)\n"
                    f"{', '.join(o + '_' for o in outs)} = {op} <hidden_size=4, direction=\"bidirectional\""
                    f"{extra}> (xt, w, r, bb, {lens}, ht)\ny = Transpose <perm=[2,0,1,3]> (y_)\n"
                    + "\n".join(f"{o} = Transpose <perm=[1,0,2]> ({o}_)" for o in outs[1:]),
                    inputs, None, w, outputs=typed(op)).text()
    feeds = {"x": f32(B, steps, I), "h0": f32(B, 2, H)}
    if with_lens:
        feeds["lens"] = np.asarray([steps, 3], np.int32)
    compiled = compile_onnx(as_model(batch_first))
    assert "WHILE" in compiled.op_histogram
    result = differential(batch_first, feeds, compiled=compiled, reference=seq_first)
    assert not result.failures(), result.failures()
    for name, value in result.expected.items():  # and element by element
        np.testing.assert_allclose(result.outputs[name], value, atol=1e-5, rtol=1e-4, err_msg=name)


def test_threshold_picks_the_form():
    """UNROLL_MAX_STEPS steps unroll; one more runs in WHILE loops of LOOP_CHUNK_STEPS steps each."""
    def ops(steps):
        text = Row("RNN", 14, "y = RNN <hidden_size=4> (x, w, r, bb)", f"float[{steps},1,{I}] x", None,
                   weights("RNN")).text()
        return compile_onnx(as_model(text)).op_histogram
    assert "WHILE" not in ops(UNROLL_MAX_STEPS) and ops(UNROLL_MAX_STEPS)["FULLY_CONNECTED"] == UNROLL_MAX_STEPS + 1
    assert ops(UNROLL_MAX_STEPS + 1)["WHILE"] == -(-(UNROLL_MAX_STEPS + 1) // LOOP_CHUNK_STEPS)


def test_wide_recurrences_loop_sooner():
    """Unrolled steps each get a packed copy of R: past UNROLL_MAX_WEIGHT_BYTES of copies the loop is faster."""
    hidden = 128
    steps = UNROLL_MAX_WEIGHT_BYTES // (4 * hidden * hidden * 4) + 1  # one LSTM step past the limit
    text = Row("LSTM", 14, f"y = LSTM <hidden_size={hidden}> (x, w, r)", f"float[{steps},1,{I}] x", None,
               {"w": f32(1, 4 * hidden, I), "r": f32(1, 4 * hidden, hidden, scale=0.05)}).text()
    compiled = assert_converts(text)
    assert steps <= UNROLL_MAX_STEPS and "WHILE" in compiled.op_histogram


# ------------------------------------------------------------------ zoo models (torch-exported) past the threshold
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_zoo_recurrent_models_in_the_loop(zoo_onnx, name):
    steps = 3 * LOOP_CHUNK_STEPS + 5  # several chunks and a short last one
    path = zoo_onnx(name, f"1x{steps}x8")
    compiled = compile_onnx(path)
    assert "WHILE" in compiled.op_histogram
    assert_converts(path, compiled=compiled, atol=0.0, rtol=1e-4)


# ------------------------------------------------------------------ precision passes reach the loop bodies' weights
@pytest.mark.parametrize("precision, stored", [("fp16", np.float16), ("dynamic", np.int8)])
def test_weight_precision_reaches_the_loop_body(zoo_onnx, precision, stored):
    """FP16 / dynamic-range store the recurrent weights R in the WHILE bodies as they do in the main graph (they
    stayed float32 there: the file kept full-size copies) and the model still matches ONNX Runtime."""
    steps = 3 * LOOP_CHUNK_STEPS + 5
    path = zoo_onnx("lstm", f"1x{steps}x8")
    plain, compiled = compile_onnx(path), compile_onnx(path, precision=precision)
    bodies = compiled.graph.subgraphs
    assert bodies and "WHILE" in compiled.op_histogram

    def big_float32(graph):
        return [t.name for t in graph.tensors.values() if t.data is not None and t.dtype == np.float32
                and t.data.size >= 64]
    assert all(not big_float32(sub) for sub in bodies), [big_float32(sub) for sub in bodies]
    assert any(t.data is not None and t.dtype == stored for sub in bodies for t in sub.tensors.values())
    assert len(compiled.to_bytes()) < 0.75 * len(plain.to_bytes())
    assert_converts(path, compiled=compiled, atol=0.0, rtol=2e-2)
