"""Recurrent layers: LSTM, GRU and RNN (forward, reverse, bidirectional; layout 0 or 1), unrolled over the
static sequence length into FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD.

Why not UNIDIRECTIONAL_SEQUENCE_LSTM / _RNN: their hidden and cell states are *variable* tensors that keep
the final state of one invoke as the initial state of the next, so a second run on the same input gives a
different answer (ONNX recurrences start from zeros or `initial_h` every run; see
tests/converters/tflite/test_recurrent.py). GRU has no builtin at all. The input projection of every time
step is one FULLY_CONNECTED before the loop; each step then costs one FULLY_CONNECTED on the state.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.lowerings._common import const_of
from edgekit.converters.tflite.registry import Unsupported, lowering

EMITS = ("FULLY_CONNECTED", "UNPACK", "PACK", "RESHAPE", "SPLIT", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "RELU",
         "MAXIMUM", "MINIMUM")
ACTIVATIONS = {"Sigmoid": "LOGISTIC", "Tanh": "TANH", "Relu": "RELU"}
#: steps beyond which unrolling makes the model too large; a WHILE-loop lowering does not exist yet
MAX_UNROLLED_STEPS = 1024


class _Cell:
    """Shapes, weights and op helpers shared by the three recurrences, for one direction of one node."""

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
            raise Unsupported("a dynamic batch size (the recurrence is unrolled per step)",
                              hint="Fix the batch with --input-shape NAME=1x...")
        if self.steps > MAX_UNROLLED_STEPS:
            raise Unsupported(f"{self.steps} time steps; the recurrence is unrolled and at most {MAX_UNROLLED_STEPS} "
                              "steps are supported", hint="Export with a shorter sequence (--input-shape).")
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
        self._unpacked: dict = {}  # initial-state input -> its per-direction tensors
        self._consts: dict = {}  # weight key -> tensor, shared across time steps

    # -- tensors of one step: [batch, n]
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
        """x · weightᵀ + bias; the constants are stored once per `key` and shared by every step."""
        bias_t = None if bias is None or not np.any(bias) else self.shared(bias, f"{key}_bias")
        return self.op("FULLY_CONNECTED", [x, self.shared(weight, f"{key}_weight"), bias_t], hint, weight.shape[0])

    def shared(self, array: np.ndarray, key: str, dtype=np.float32) -> str:
        if key not in self._consts:
            self._consts[key] = self.b.const(array, dtype, key)
        return self._consts[key]

    # -- the sequence
    def projected_inputs(self, d: int, bias: np.ndarray) -> list:
        """x_t · Wᵀ + bias for every step, as one FULLY_CONNECTED then UNPACK along time."""
        width = self.gates * self.hidden
        shape = list(self.x.shape[:2]) + [width]
        proj = self.b.temp(shape, hint=f"d{d}_xw")
        self.b.emit("FULLY_CONNECTED", [self.b.t(self.x), self.b.const(self.w[d], np.float32, f"d{d}_W"),
                                        self.b.const(bias, np.float32, f"d{d}_xw_bias")], [proj], keepNumDims=True)
        steps = [self.vec(f"d{d}_xw_t{t}", width) for t in range(self.steps)]
        self.b.emit("UNPACK", [proj], steps, num=self.steps, axis=self.time_axis)
        return steps

    def initial(self, value, d: int, what: str) -> str:
        """The [batch, hidden] initial state of direction `d` (zeros when the input is omitted)."""
        if value is None:
            return self.b.const(np.zeros([self.batch, self.hidden], np.float32), hint=f"d{d}_{what}0")
        state_axis = 1 if self.layout else 0  # [dirs, batch, hidden] or [batch, dirs, hidden]
        if value.is_const:
            return self.b.const(np.take(value.const, d, axis=state_axis), np.float32, f"d{d}_{what}0")
        if value.name not in self._unpacked:
            parts = [self.vec(f"{what}0_d{i}") for i in range(self.dirs)]
            self.b.emit("UNPACK", [self.b.t(value)], parts, num=self.dirs, axis=state_axis)
            self._unpacked[value.name] = parts
        return self._unpacked[value.name][d]

    def order(self, d: int) -> list:
        backwards = self.reverse_only or d == 1
        return list(range(self.steps))[::-1] if backwards else list(range(self.steps))

    def write_outputs(self, sequences: list, finals: list) -> None:
        """Y from the per-step hidden states; Y_h (and Y_c) from the final states, in ONNX's layouts."""
        y = self.b.outputs[0] if self.b.outputs else None
        if y is not None:
            per_dir = []
            for d, hs in enumerate(sequences):
                shape = [self.steps, self.batch, self.hidden] if not self.layout else [self.batch, self.steps, self.hidden]
                packed = self.b.temp(shape, hint=f"d{d}_Y")
                self.b.emit("PACK", hs, [packed], valuesCount=len(hs), axis=self.time_axis)
                per_dir.append(packed)
            self._join(per_dir, y, axis=2 if self.layout else 1)
        for out, states in zip(self.b.outputs[1:], finals):
            if out is not None:
                self._join(states, out, axis=1 if self.layout else 0)

    def _join(self, tensors: list, out, axis: int) -> None:
        if len(tensors) == 1:
            self.b.emit("RESHAPE", [tensors[0], self.b.ints(list(out.shape))], [self.b.out(out)])
        else:
            self.b.emit("PACK", tensors, [self.b.out(out)], valuesCount=len(tensors), axis=axis)


def _check_lengths(sequence_lens, steps: int) -> None:
    if sequence_lens is None:
        return
    if not sequence_lens.is_const or np.any(sequence_lens.const != steps):
        raise Unsupported("per-example sequence_lens (shorter sequences in the batch) are not supported",
                          hint="Pad every sequence to the full length and drop sequence_lens.")


# --------------------------------------------------------------------------------------------- LSTM
def _lstm(b, x, w, r, bias, sequence_lens, initial_h, initial_c, p, *, activations, clip, direction, hidden_size,
          input_forget, layout=0):
    if input_forget:
        raise Unsupported("input_forget=1 (coupled input and forget gates)")
    cell = _Cell(b, x, w, r, bias, gates=4, direction=direction, layout=layout, hidden_size=hidden_size,
                 activations=activations, clip=clip, defaults=["Sigmoid", "Tanh", "Tanh"])
    _check_lengths(sequence_lens, cell.steps)
    peep = None if p is None else const_of(p, "P").astype(np.float32)
    sequences, final_h, final_c = [], [], []
    for d in range(cell.dirs):
        f_act, g_act, h_act = cell.activations[d]
        xs = cell.projected_inputs(d, cell.wb[d] + cell.rb[d])
        h, c = cell.initial(initial_h, d, "h"), cell.initial(initial_c, d, "c")
        pi, po, pf = (None, None, None) if peep is None or not np.any(peep[d]) else \
            (b.const(v.reshape(1, -1), np.float32, f"d{d}_P{k}") for k, v in zip("iof", np.split(peep[d], 3)))
        hs = [None] * cell.steps
        for t in cell.order(d):
            tag = f"d{d}_t{t}_"
            recurrent = cell.fc(h, cell.r[d], None, tag + "hR", f"d{d}_R")
            gates = cell.op("ADD", [xs[t], recurrent], tag + "gates", 4 * cell.hidden)
            gi, go, gf, gc = cell.split(gates, 4, tag + "iofc")
            if pi is not None:
                gi = cell.op("ADD", [gi, cell.op("MUL", [c, pi], tag + "pi")], tag + "gi_peep")
                gf = cell.op("ADD", [gf, cell.op("MUL", [c, pf], tag + "pf")], tag + "gf_peep")
            i, f = cell.act(f_act, gi, tag + "i"), cell.act(f_act, gf, tag + "f")
            kept = cell.op("MUL", [f, c], tag + "fc")
            c = cell.op("ADD", [kept, cell.op("MUL", [i, cell.act(g_act, gc, tag + "g")], tag + "ig")], tag + "c")
            if po is not None:
                go = cell.op("ADD", [go, cell.op("MUL", [c, po], tag + "po")], tag + "go_peep")
            o = cell.act(f_act, go, tag + "o")
            h = hs[t] = cell.op("MUL", [o, cell.act(h_act, c, tag + "c_act", clip=False)], tag + "h")
        sequences.append(hs)
        final_h.append(h)
        final_c.append(c)
    cell.write_outputs(sequences, [final_h, final_c])


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
    _check_lengths(sequence_lens, cell.steps)
    hid = cell.hidden
    sequences, finals = [], []
    for d in range(cell.dirs):
        f_act, g_act = cell.activations[d]
        rb_h = cell.rb[d][2 * hid:]
        # z and r take both biases before the loop; h takes Rb_h inside when it multiplies r (linear_before_reset)
        rb_in_projection = np.concatenate([cell.rb[d][:2 * hid], 0 * rb_h if linear_before_reset else rb_h])
        xs = cell.projected_inputs(d, cell.wb[d] + rb_in_projection)
        h = cell.initial(initial_h, d, "h")
        hs = [None] * cell.steps
        for t in cell.order(d):
            tag = f"d{d}_t{t}_"
            xz, xr, xh = cell.split(xs[t], 3, tag + "x_zrh")
            if linear_before_reset:
                recurrent = cell.fc(h, cell.r[d], np.concatenate([np.zeros(2 * hid), rb_h]), tag + "hR", f"d{d}_R")
                hz, hr, hh = cell.split(recurrent, 3, tag + "h_zrh")
            else:
                hz, hr = cell.split(cell.fc(h, cell.r[d][:2 * hid], None, tag + "hR_zr", f"d{d}_R_zr"), 2, tag + "h_zr")
            z = cell.act(f_act, cell.op("ADD", [xz, hz], tag + "gz"), tag + "z")
            rr = cell.act(f_act, cell.op("ADD", [xr, hr], tag + "gr"), tag + "r")
            if linear_before_reset:
                reset = cell.op("MUL", [rr, hh], tag + "r_hh")
            else:
                reset = cell.fc(cell.op("MUL", [rr, h], tag + "r_h"), cell.r[d][2 * hid:], None, tag + "rh_R",
                                f"d{d}_R_h")
            n = cell.act(g_act, cell.op("ADD", [xh, reset], tag + "gn"), tag + "n")
            # h' = (1 - z) * n + z * h  ==  n + z * (h - n)
            h = hs[t] = cell.op("ADD", [n, cell.op("MUL", [z, cell.op("SUB", [h, n], tag + "h_n")], tag + "z_hn")],
                                tag + "h")
        sequences.append(hs)
        finals.append(h)
    cell.write_outputs(sequences, [finals])


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
    _check_lengths(sequence_lens, cell.steps)
    sequences, finals = [], []
    for d in range(cell.dirs):
        (f_act,) = cell.activations[d]
        xs = cell.projected_inputs(d, cell.wb[d] + cell.rb[d])
        h = cell.initial(initial_h, d, "h")
        hs = [None] * cell.steps
        for t in cell.order(d):
            tag = f"d{d}_t{t}_"
            recurrent = cell.fc(h, cell.r[d], None, tag + "hR", f"d{d}_R")
            h = hs[t] = cell.act(f_act, cell.op("ADD", [xs[t], recurrent], tag + "g"), tag + "h")
        sequences.append(hs)
        finals.append(h)
    cell.write_outputs(sequences, [finals])


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
