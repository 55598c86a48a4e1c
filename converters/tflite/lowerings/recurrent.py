"""Recurrent layers: LSTM, GRU and RNN (forward, reverse, bidirectional; layout 0 or 1; per-example sequence_lens).

Two forms share one implementation of each cell (`_lstm_step`, `_gru_step`, `_rnn_step`, emitting through a `_Steps`):
- unrolled over the static sequence length into FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD, up to
  UNROLL_MAX_STEPS steps and UNROLL_MAX_WEIGHT_BYTES, where it is faster;
- WHILE loops beyond that, or when sequence_lens differ per example (chained loops of LOOP_CHUNK_STEPS: see
  `_looped`): each loop carries (step, projected inputs,
  [lengths], h, [c], Y accumulator); its body GATHERs x_t, runs one cell step, masks rows past their length
  (SELECT_V2: the state is kept, Y gets zeros, as ONNX Runtime does) and writes h into Y with
  DYNAMIC_UPDATE_SLICE. A reverse direction runs forward over the sequence reversed per row (REVERSE_SEQUENCE, so
  each row starts at its own last step) and reverses Y back.

Why not UNIDIRECTIONAL_SEQUENCE_LSTM / _RNN: their hidden and cell states are *variable* tensors that keep
the final state of one invoke as the initial state of the next, so a second run on the same input gives a
different answer (ONNX recurrences start from zeros or `initial_h` every run; see
tests/converters/tflite/test_recurrent.py). GRU has no builtin at all. The input projection of every time
step is one FULLY_CONNECTED before the loop (either form); each step then costs one FULLY_CONNECTED on the state.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import const_of
from edgekit.converters.tflite.registry import Unsupported, lowering

UNROLLED = ("FULLY_CONNECTED", "UNPACK", "PACK", "RESHAPE", "SPLIT", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "RELU",
            "MAXIMUM", "MINIMUM")
LOOPED = ("WHILE", "FILL", "GATHER", "LESS", "SELECT_V2", "DYNAMIC_UPDATE_SLICE", "REVERSE_V2", "REVERSE_SEQUENCE",
          "SPLIT_V", "CONCATENATION")
EMITS = UNROLLED + LOOPED
ACTIVATIONS = {"Sigmoid": "LOGISTIC", "Tanh": "TANH", "Relu": "RELU"}
#: the longest sequence that is unrolled, and the most bytes of recurrent-weight copies it may make (steps × R's
#: bytes); longer or wider recurrences run in WHILE loops. Why the bytes: under XNNPACK (LiteRT's default delegate)
#: the unrolled LSTM of hidden 128 over 32 steps ran 6.2 ms, without the delegate 0.27 ms, the loop 0.21 ms: as we
#: read it, the delegate packs its own copy of R for every unrolled FULLY_CONNECTED, and 8 MB of copies miss cache.
#: benchmarks/bench_recurrent_while.py decides both (LiteRT, 2 threads, interleaved medians, batch 1; 2-core AVX-512
#: VM; figures in the README): hidden 32, unrolled is 1.1-2x faster up to 128 steps (LSTM: 2 MB of copies), the loop
#: 1.3-8x faster at 256 (4 MB); hidden 64, unrolled wins at 32 steps (2 MB), the loop at 64; hidden 128 (256 KB per
#: LSTM copy), the loop is 1.4x faster from 8 steps (2 MB) and 4-20x from 32.
UNROLL_MAX_STEPS = 128
UNROLL_MAX_WEIGHT_BYTES = 2 << 20
#: steps per WHILE loop of the looped form (a longer sequence chains loops; see `_looped` for why)
LOOP_CHUNK_STEPS = 64


class _Steps:
    """Op helpers for one step of a recurrence, emitting through one Builder: the main graph's (unrolled) or a WHILE
    body's. Constants are stored once per Builder and key, and shared by every step."""

    def __init__(self, b, batch: int, hidden: int, clip):
        self.b, self.batch, self.hidden, self.clip = b, batch, hidden, clip
        self._consts: dict = {}

    def vec(self, hint: str, width: int | None = None) -> str:
        return self.b.temp([self.batch, width or self.hidden], hint=hint)

    def op(self, code: str, inputs, hint: str, width: int | None = None) -> str:
        out = self.vec(hint, width)
        self.b.emit(code, inputs, [out])
        return out

    def act(self, code: str, x: str, hint: str, width: int | None = None, clip: bool = True) -> str:
        if clip and self.clip is not None:  # gate inputs are clipped (ONNX Runtime leaves LSTM's h(C) alone)
            lo = self.op("MAXIMUM", [x, self.shared(np.full([1, 1], -self.clip), "clip_lo")], f"{hint}_clipped_lo",
                         width)
            x = self.op("MINIMUM", [lo, self.shared(np.full([1, 1], self.clip), "clip_hi")], f"{hint}_clipped", width)
        return self.op(code, [x], hint, width)

    def split(self, x: str, parts: int, hint: str) -> list:
        outs = [self.vec(f"{hint}{i}") for i in range(parts)]
        self.b.emit("SPLIT", [self.shared(np.int32(1), "split_axis", np.int32), x], outs, numSplits=parts)
        return outs

    def fc(self, x: str, weight: np.ndarray, bias: np.ndarray | None, hint: str, key: str) -> str:
        """x · weightᵀ + bias."""
        bias_t = None if bias is None or not np.any(bias) else self.shared(bias, f"{key}_bias")
        return self.op("FULLY_CONNECTED", [x, self.shared(weight, f"{key}_weight"), bias_t], hint, weight.shape[0])

    def shared(self, array: np.ndarray, key: str, dtype=np.float32) -> str:
        if key not in self._consts:
            self._consts[key] = self.b.const(array, dtype, key)
        return self._consts[key]


class _Cell:
    """Shapes, weights and the sequence-level ops shared by the three recurrences, for every direction of one node."""

    def __init__(self, b, x, w, r, bias, *, gates, direction, layout, hidden_size, activations, clip, defaults):
        self.b = b
        if direction not in ("forward", "reverse", "bidirectional"):
            raise Unsupported(f"direction={direction!r} is not an ONNX value")
        self.dirs = 2 if direction == "bidirectional" else 1
        self.reverse_only = direction == "reverse"
        self.layout = int(layout)
        self.w = const_of(w, "W").astype(np.float32)
        self.r = const_of(r, "R").astype(np.float32)
        self.hidden = int(hidden_size or self.r.shape[-1])
        self.gates = gates
        bias = const_of(bias, "B")
        self.wb, self.rb = (np.zeros((self.dirs, gates * self.hidden), np.float32),) * 2 if bias is None else \
            np.split(bias.astype(np.float32), 2, axis=1)
        self.time_axis = 1 if self.layout else 0
        self.steps = int(x.shape[self.time_axis])
        self.batch = int(x.shape[1 - self.time_axis])
        if self.batch < 0:
            raise Unsupported("a dynamic batch size (the recurrence is compiled for one batch size)",
                              hint="Fix the batch with --input-shape NAME=1x...")
        names = list(activations) if activations else defaults * self.dirs
        if len(names) != len(defaults) * self.dirs:
            raise Unsupported(f"activations={names}: expected {len(defaults)} per direction")
        unknown = sorted({a for a in names if a not in ACTIVATIONS})
        if unknown:
            raise Unsupported(f"activation(s) {unknown}; supported: {sorted(ACTIVATIONS)}")
        self.activations = [[ACTIVATIONS[a] for a in names[d * len(defaults):(d + 1) * len(defaults)]]
                            for d in range(self.dirs)]
        self.clip = None if clip is None else float(clip)
        self.x = x
        self.main = _Steps(b, self.batch, self.hidden, self.clip)
        self._unpacked: dict = {}  # initial-state input -> its per-direction tensors

    def backwards(self, d: int) -> bool:
        return self.reverse_only or d == 1

    def seq_shape(self, width: int) -> list:
        return [self.steps, self.batch, width] if not self.layout else [self.batch, self.steps, width]

    def projection(self, d: int, bias: np.ndarray) -> str:
        """x_t · Wᵀ + bias for every step, as one FULLY_CONNECTED: [steps, batch, gates*hidden] (or batch first)."""
        proj = self.b.temp(self.seq_shape(self.gates * self.hidden), hint=f"d{d}_xw")
        self.b.emit("FULLY_CONNECTED", [self.b.t(self.x), self.b.const(self.w[d], np.float32, f"d{d}_W"),
                                        self.b.const(bias, np.float32, f"d{d}_xw_bias")], [proj], keepNumDims=True)
        return proj

    def initial(self, value, d: int, what: str) -> str:
        """The [batch, hidden] initial state of direction `d` (zeros when the input is omitted)."""
        if value is None:
            return self.b.const(np.zeros([self.batch, self.hidden], np.float32), hint=f"d{d}_{what}0")
        state_axis = 1 if self.layout else 0  # [dirs, batch, hidden] or [batch, dirs, hidden]
        if value.is_const:
            return self.b.const(np.take(value.const, d, axis=state_axis), np.float32, f"d{d}_{what}0")
        if value.name not in self._unpacked:
            parts = [self.main.vec(f"{what}0_d{i}") for i in range(self.dirs)]
            self.b.emit("UNPACK", [self.b.t(value)], parts, num=self.dirs, axis=state_axis)
            self._unpacked[value.name] = parts
        return self._unpacked[value.name][d]

    def write_outputs(self, sequences: list, finals: list) -> None:
        """Y from the per-direction sequences (`seq_shape`); Y_h (and Y_c) from the final states, in ONNX's layouts."""
        y = self.b.outputs[0] if self.b.outputs else None
        if y is not None:
            self._join(sequences, y, axis=2 if self.layout else 1)
        for out, states in zip(self.b.outputs[1:], finals):
            if out is not None:
                self._join(states, out, axis=1 if self.layout else 0)

    def _join(self, tensors: list, out, axis: int) -> None:
        if len(tensors) == 1:
            self.b.emit("RESHAPE", [tensors[0], self.b.ints(list(out.shape))], [self.b.out(out)])
        else:
            self.b.emit("PACK", tensors, [self.b.out(out)], valuesCount=len(tensors), axis=axis)


def _run(cell: _Cell, step, bias_of, initial: list, sequence_lens) -> None:
    """Every direction of the recurrence, unrolled or in a WHILE loop, then the outputs.

    step(steps, d, x_t, states, tag) -> new states (h first): one cell step; bias_of(d): the projection's bias;
    initial: per state, the node's initial-state input (or None)."""
    lengths = _lengths(cell, sequence_lens)
    looped = lengths is not None or not _unrolls(cell)
    started = None
    if lengths is not None and not sequence_lens.is_const:  # a run-time length may be 0 (constant ones are >= 1)
        started = cell.b.temp([cell.batch, 1], np.bool_, "started")
        cell.b.emit("LESS", [cell.b.const(np.zeros([1, 1], np.int32), np.int32, "no_steps"),
                             _column(cell, lengths, "lengths_column")], [started])
    sequences, finals = [], [[] for _ in initial]
    for d in range(cell.dirs):
        states = [cell.initial(value, d, what) for value, what in zip(initial, "hc")]
        proj = cell.projection(d, bias_of(d))
        ys, states = (_looped if looped else _unrolled)(cell, step, d, proj, states, lengths)
        if started is not None:  # ONNX Runtime's final state of an empty row is zeros, not the initial state
            states = [cell.main.op("SELECT_V2", [started, state, cell.main.shared(np.zeros([1, 1]), "zeros")],
                                   f"d{d}_final{i}") for i, state in enumerate(states)]
        sequences.append(ys)
        for kept, state in zip(finals, states):
            kept.append(state)
    cell.write_outputs(sequences, finals)


def _unrolls(cell: _Cell) -> bool:
    """Whether the unrolled form is the faster one (UNROLL_MAX_STEPS, UNROLL_MAX_WEIGHT_BYTES)."""
    return cell.steps <= UNROLL_MAX_STEPS and cell.steps * cell.r[0].nbytes <= UNROLL_MAX_WEIGHT_BYTES


def _lengths(cell: _Cell, sequence_lens) -> str | None:
    """The int32 [batch] lengths tensor when rows may be shorter than the sequence; None when all are full."""
    if sequence_lens is None or (sequence_lens.is_const and np.all(sequence_lens.const == cell.steps)):
        return None
    if sequence_lens.is_const:
        lens = sequence_lens.const
        if np.any(lens < 1) or np.any(lens > cell.steps):
            raise Unsupported(f"sequence_lens {lens.tolist()} outside 1..{cell.steps} (the sequence length)")
        return cell.b.const(lens.astype(np.int32), np.int32, "sequence_lens")
    if np.dtype(sequence_lens.dtype) != np.int32:
        raise Unsupported(f"sequence_lens of dtype {np.dtype(sequence_lens.dtype).name} (ONNX specifies int32)")
    # clamped into 0..steps: REVERSE_SEQUENCE would read past the sequence for a longer one (ONNX Runtime refuses it)
    at_most = cell.b.temp([cell.batch], np.int32, "sequence_lens_at_most_steps")
    cell.b.emit("MINIMUM", [cell.b.t(sequence_lens), cell.b.const(np.int32([cell.steps]), np.int32, "steps")],
                [at_most])
    clamped = cell.b.temp([cell.batch], np.int32, "sequence_lens_clamped")
    cell.b.emit("MAXIMUM", [at_most, cell.b.const(np.int32([0]), np.int32, "zero_steps")], [clamped])
    return clamped


def _unrolled(cell: _Cell, step, d: int, proj: str, states: list, lengths):
    """One direction unrolled step by step (full-length rows only: `lengths` is None); returns (Y, final states)."""
    width = cell.gates * cell.hidden
    xs = [cell.main.vec(f"d{d}_xw_t{t}", width) for t in range(cell.steps)]
    cell.b.emit("UNPACK", [proj], xs, num=cell.steps, axis=cell.time_axis)
    hs = [None] * cell.steps
    for t in (reversed(range(cell.steps)) if cell.backwards(d) else range(cell.steps)):
        states = step(cell.main, d, xs[t], states, f"d{d}_t{t}_")
        hs[t] = states[0]
    packed = cell.b.temp(cell.seq_shape(cell.hidden), hint=f"d{d}_Y")
    cell.b.emit("PACK", hs, [packed], valuesCount=len(hs), axis=cell.time_axis)
    return packed, states


def _looped(cell: _Cell, step, d: int, proj: str, states: list, lengths):
    """One direction as a chain of WHILE loops over chunks of LOOP_CHUNK_STEPS; returns (Y, final states).

    Why chunks: LiteRT's WHILE deep-copies every carried tensor into the body each iteration, so a loop carrying
    the whole sequence costs O(steps²) (a GRU at 8,192 steps ran 15× slower per step than at 512); a chunk
    bounds the copy per step."""
    b, axis = cell.b, cell.time_axis
    if cell.backwards(d):
        proj = _reversed(cell, proj, lengths, f"d{d}_xw_reversed")
    sizes = [min(LOOP_CHUNK_STEPS, cell.steps - start) for start in range(0, cell.steps, LOOP_CHUNK_STEPS)]
    chunks = [proj]
    if len(sizes) > 1:
        chunks = [b.temp(_with_time(cell, b.shape_of(proj), k), hint=f"d{d}_xw_chunk") for k in sizes]
        b.emit("SPLIT_V", [proj, b.ints(sizes, "chunk_sizes"), _scalar(b, axis, np.int32, "time_axis")], chunks,
               numSplits=len(sizes))
    column = None if lengths is None else _column(cell, lengths, f"d{d}_lengths")
    loops: dict = {}  # chunk length -> (cond, body) subgraph indices
    ys = []
    for start, k, chunk in zip(range(0, cell.steps, LOOP_CHUNK_STEPS), sizes, chunks):
        y0 = b.temp(_with_time(cell, cell.seq_shape(cell.hidden), k), hint=f"d{d}_Y0")
        b.emit("FILL", [b.ints(b.shape_of(y0), f"d{d}_Y_shape"), _scalar(b, 0, np.float32, "zero")], [y0])
        lens = []
        if column is not None:  # the chunk's own step counter runs from 0: lengths count from the chunk's start
            lens = [b.temp([cell.batch, 1], np.int32, f"d{d}_lengths_left")]
            b.emit("SUB", [column, b.const(np.full([1, 1], start, np.int32), np.int32, "chunk_start")], lens)
        carried = [_scalar(b, 0, np.int32, f"d{d}_t0"), chunk] + lens + states + [y0]
        like = [(b.shape_of(n), b.g.tensors[n].dtype) for n in carried]
        if k not in loops:
            loops[k] = _loop_subgraphs(cell, step, d, like, k, column is not None, len(states))
        outs = [b.temp(shape, dtype, f"d{d}_loop_out") for shape, dtype in like]
        b.emit("WHILE", carried, outs, condSubgraphIndex=loops[k][0], bodySubgraphIndex=loops[k][1])
        states = outs[len(outs) - 1 - len(states):-1]
        ys.append(outs[-1])
    y = ys[0]
    if len(ys) > 1:
        y = b.temp(cell.seq_shape(cell.hidden), hint=f"d{d}_Y_chunks")
        b.emit("CONCATENATION", ys, [y], axis=axis)
    if cell.backwards(d):
        y = _reversed(cell, y, lengths, f"d{d}_Y")
    return y, states


def _with_time(cell: _Cell, shape: list, steps: int) -> list:
    return [steps if i == cell.time_axis else n for i, n in enumerate(shape)]


def _loop_subgraphs(cell: _Cell, step, d: int, like: list, steps: int, masked: bool, n_states: int) -> tuple:
    """The cond and body subgraphs of a loop over `steps` steps carrying (t, x·W chunk, [lengths], states, Y)."""
    b, axis = cell.b, cell.time_axis
    cond_index, cond = b.subgraph()
    cond.g.inputs = [cond.temp(shape, dtype, f"d{d}_cond_in") for shape, dtype in like]
    more = cond.temp([], np.bool_, f"d{d}_more")
    cond.emit("LESS", [cond.g.inputs[0], _scalar(cond, steps, np.int32, "steps")], [more])
    cond.g.outputs = [more]
    body_index, body = b.subgraph()
    ins = body.g.inputs = [body.temp(shape, dtype, f"d{d}_body_in") for shape, dtype in like]
    t, proj_t = ins[0], ins[1]
    old_states, y_acc = ins[len(ins) - 1 - n_states:-1], ins[-1]
    emitter = _Steps(body, cell.batch, cell.hidden, cell.clip)
    x_t = emitter.vec("x_t", cell.gates * cell.hidden)
    body.emit("GATHER", [proj_t, t], [x_t], axis=axis)
    new_states = step(emitter, d, x_t, old_states, f"d{d}_")
    y_t = new_states[0]
    if masked:  # rows past their length keep their state and emit zeros
        valid = body.temp([cell.batch, 1], np.bool_, "valid")
        body.emit("LESS", [t, ins[2]], [valid])
        new_states = [emitter.op("SELECT_V2", [valid, new, old], f"kept{i}") for i, (new, old) in
                      enumerate(zip(new_states, old_states))]
        y_t = emitter.op("SELECT_V2", [valid, new_states[0], emitter.shared(np.zeros([1, 1]), "zeros")], "y_t")
    update_shape = _with_time(cell, [cell.batch, cell.batch, cell.hidden], 1)  # [1, B, H] or [B, 1, H]
    update = body.temp(update_shape, hint="y_update")
    body.emit("RESHAPE", [y_t, body.ints(update_shape, "update_shape")], [update])
    start = body.temp([3], np.int32, "y_start")
    body.emit("MUL", [t, body.const(np.eye(3, dtype=np.int32)[axis], np.int32, "time_axis")], [start])
    y_next = body.temp(like[-1][0], hint="y")
    body.emit("DYNAMIC_UPDATE_SLICE", [y_acc, update, start], [y_next])
    t_next = body.temp([], np.int32, "t_next")
    body.emit("ADD", [t, _scalar(body, 1, np.int32, "one")], [t_next])
    body.g.outputs = [t_next] + ins[1:len(ins) - 1 - n_states] + new_states + [y_next]
    return cond_index, body_index


def _reversed(cell: _Cell, seq: str, lengths, hint: str) -> str:
    """`seq` reversed along time: each row's first `lengths` steps (REVERSE_SEQUENCE), or all of them."""
    b = cell.b
    out = b.temp(b.shape_of(seq), hint=hint)
    if lengths is None:
        b.emit("REVERSE_V2", [seq, b.ints([cell.time_axis], "time_axis")], [out])
    else:
        b.emit("REVERSE_SEQUENCE", [seq, lengths], [out], seqDim=cell.time_axis, batchDim=1 - cell.time_axis)
    return out


def _scalar(b, value, dtype, hint: str) -> str:
    """A rank-0 constant (Builder.const stores numpy scalars as [1]; FILL and WHILE's counter need rank 0)."""
    name = b.const(np.asarray([value], dtype), dtype, hint)
    tensor = b.g.tensors[name]
    tensor.shape, tensor.data = [], tensor.data.reshape(())
    return name


def _column(cell: _Cell, lengths: str, hint: str) -> str:
    """[batch] lengths as a [batch, 1] column, to compare with the step and select whole rows."""
    out = cell.b.temp([cell.batch, 1], np.int32, hint)
    cell.b.emit("RESHAPE", [lengths, cell.b.ints([cell.batch, 1])], [out])
    return out


# --------------------------------------------------------------------------------------------- LSTM
def _lstm(b, x, w, r, bias, sequence_lens, initial_h, initial_c, p, *, activations, clip, direction, hidden_size,
          input_forget, layout=0):
    if input_forget:
        raise Unsupported("input_forget=1 (coupled input and forget gates)")
    cell = _Cell(b, x, w, r, bias, gates=4, direction=direction, layout=layout, hidden_size=hidden_size,
                 activations=activations, clip=clip, defaults=["Sigmoid", "Tanh", "Tanh"])
    peep = None if p is None else const_of(p, "P").astype(np.float32)

    def step(steps, d, xg, states, tag):
        return _lstm_step(steps, cell, d, xg, *states, None if peep is None or not np.any(peep[d]) else peep[d], tag)
    _run(cell, step, lambda d: cell.wb[d] + cell.rb[d], [initial_h, initial_c], sequence_lens)


def _lstm_step(s: _Steps, cell: _Cell, d: int, xg: str, h: str, c: str, peep, tag: str) -> list:
    """One LSTM step (ONNX gate order i, o, f, c; peepholes on i, f from c and on o from the new c)."""
    f_act, g_act, h_act = cell.activations[d]
    pi, po, pf = (None,) * 3 if peep is None else \
        (s.shared(v.reshape(1, -1), f"d{d}_P{k}") for k, v in zip("iof", np.split(peep, 3)))
    recurrent = s.fc(h, cell.r[d], None, tag + "hR", f"d{d}_R")
    gates = s.op("ADD", [xg, recurrent], tag + "gates", 4 * cell.hidden)
    gi, go, gf, gc = s.split(gates, 4, tag + "iofc")
    if pi is not None:
        gi = s.op("ADD", [gi, s.op("MUL", [c, pi], tag + "pi")], tag + "gi_peep")
        gf = s.op("ADD", [gf, s.op("MUL", [c, pf], tag + "pf")], tag + "gf_peep")
    i, f = s.act(f_act, gi, tag + "i"), s.act(f_act, gf, tag + "f")
    kept = s.op("MUL", [f, c], tag + "fc")
    c = s.op("ADD", [kept, s.op("MUL", [i, s.act(g_act, gc, tag + "g")], tag + "ig")], tag + "c")
    if po is not None:
        go = s.op("ADD", [go, s.op("MUL", [c, po], tag + "po")], tag + "go_peep")
    o = s.act(f_act, go, tag + "o")
    return [s.op("MUL", [o, s.act(h_act, c, tag + "c_act", clip=False)], tag + "h"), c]


@lowering("LSTM", since=7, emits=EMITS, dynamic_batch=False)
def lstm_7(b, x, w, r, bias=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, *,
           activation_alpha=None, activation_beta=None, activations=None, clip=None, direction="forward",
           hidden_size=None, input_forget=0):
    _lstm(b, x, w, r, bias, sequence_lens, initial_h, initial_c, p, activations=activations, clip=clip,
          direction=direction, hidden_size=hidden_size, input_forget=input_forget)


@lowering("LSTM", since=14, emits=EMITS, dynamic_batch=False)
def lstm_14(b, x, w, r, bias=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, *,
            activation_alpha=None, activation_beta=None, activations=None, clip=None, direction="forward",
            hidden_size=None, input_forget=0, layout=0):
    _lstm(b, x, w, r, bias, sequence_lens, initial_h, initial_c, p, activations=activations, clip=clip,
          direction=direction, hidden_size=hidden_size, input_forget=input_forget, layout=layout)


# --------------------------------------------------------------------------------------------- GRU
def _gru(b, x, w, r, bias, sequence_lens, initial_h, *, activations, clip, direction, hidden_size,
         linear_before_reset, layout=0):
    cell = _Cell(b, x, w, r, bias, gates=3, direction=direction, layout=layout, hidden_size=hidden_size,
                 activations=activations, clip=clip, defaults=["Sigmoid", "Tanh"])
    hid = cell.hidden

    def bias_of(d):  # z and r take both biases before the loop; h takes Rb_h inside when it multiplies r (lbr)
        rb_h = cell.rb[d][2 * hid:]
        return cell.wb[d] + np.concatenate([cell.rb[d][:2 * hid], 0 * rb_h if linear_before_reset else rb_h])

    def step(steps, d, xg, states, tag):
        return [_gru_step(steps, cell, d, xg, states[0], bool(linear_before_reset), tag)]
    _run(cell, step, bias_of, [initial_h], sequence_lens)


def _gru_step(s: _Steps, cell: _Cell, d: int, xg: str, h: str, linear_before_reset: bool, tag: str) -> str:
    """One GRU step (ONNX gate order z, r, h): h' = (1 - z) * n + z * h."""
    f_act, g_act = cell.activations[d]
    hid = cell.hidden
    xz, xr, xh = s.split(xg, 3, tag + "x_zrh")
    if linear_before_reset:
        rb_h = cell.rb[d][2 * hid:]
        recurrent = s.fc(h, cell.r[d], np.concatenate([np.zeros(2 * hid), rb_h]), tag + "hR", f"d{d}_R")
        hz, hr, hh = s.split(recurrent, 3, tag + "h_zrh")
    else:
        hz, hr = s.split(s.fc(h, cell.r[d][:2 * hid], None, tag + "hR_zr", f"d{d}_R_zr"), 2, tag + "h_zr")
    z = s.act(f_act, s.op("ADD", [xz, hz], tag + "gz"), tag + "z")
    rr = s.act(f_act, s.op("ADD", [xr, hr], tag + "gr"), tag + "r")
    if linear_before_reset:
        reset = s.op("MUL", [rr, hh], tag + "r_hh")
    else:
        reset = s.fc(s.op("MUL", [rr, h], tag + "r_h"), cell.r[d][2 * hid:], None, tag + "rh_R", f"d{d}_R_h")
    n = s.act(g_act, s.op("ADD", [xh, reset], tag + "gn"), tag + "n")
    # (1 - z) * n + z * h  ==  n + z * (h - n)
    return s.op("ADD", [n, s.op("MUL", [z, s.op("SUB", [h, n], tag + "h_n")], tag + "z_hn")], tag + "h")


@lowering("GRU", since=7, emits=EMITS, dynamic_batch=False)
def gru_7(b, x, w, r, bias=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
          activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
          linear_before_reset=0):
    _gru(b, x, w, r, bias, sequence_lens, initial_h, activations=activations, clip=clip, direction=direction,
         hidden_size=hidden_size, linear_before_reset=linear_before_reset)


@lowering("GRU", since=14, emits=EMITS, dynamic_batch=False)
def gru_14(b, x, w, r, bias=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
           activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None, layout=0,
           linear_before_reset=0):
    _gru(b, x, w, r, bias, sequence_lens, initial_h, activations=activations, clip=clip, direction=direction,
         hidden_size=hidden_size, linear_before_reset=linear_before_reset, layout=layout)


# --------------------------------------------------------------------------------------------- RNN
def _rnn(b, x, w, r, bias, sequence_lens, initial_h, *, activations, clip, direction, hidden_size, layout=0):
    cell = _Cell(b, x, w, r, bias, gates=1, direction=direction, layout=layout, hidden_size=hidden_size,
                 activations=activations, clip=clip, defaults=["Tanh"])

    def step(steps, d, xg, states, tag):
        return [_rnn_step(steps, cell, d, xg, states[0], tag)]
    _run(cell, step, lambda d: cell.wb[d] + cell.rb[d], [initial_h], sequence_lens)


def _rnn_step(s: _Steps, cell: _Cell, d: int, xg: str, h: str, tag: str) -> str:
    """One RNN step: h' = f(x_t·Wᵀ + h·Rᵀ + Wb + Rb)."""
    (f_act,) = cell.activations[d]
    return s.act(f_act, s.op("ADD", [xg, s.fc(h, cell.r[d], None, tag + "hR", f"d{d}_R")], tag + "g"), tag + "h")


@lowering("RNN", since=7, emits=EMITS, dynamic_batch=False)
def rnn_7(b, x, w, r, bias=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
          activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None):
    _rnn(b, x, w, r, bias, sequence_lens, initial_h, activations=activations, clip=clip, direction=direction,
         hidden_size=hidden_size)


@lowering("RNN", since=14, emits=EMITS, dynamic_batch=False)
def rnn_14(b, x, w, r, bias=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
           activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None, layout=0):
    _rnn(b, x, w, r, bias, sequence_lens, initial_h, activations=activations, clip=clip, direction=direction,
         hidden_size=hidden_size, layout=layout)
