"""passes/adaptive_pool.py: PyTorch's decomposition of an adaptive average pool whose output size does not divide the
input (a constant-index GatherND of every window, then a mean) becomes one AdaptiveAveragePool, lowered on NHWC data
as RESHAPE + BATCH_MATMUL + RESHAPE."""
from __future__ import annotations

import numpy as np

from _pass_case import as_model, compiled_ops, model_text


def windows(size_in: int, size_out: int) -> list[range]:
    """torch's adaptive windows: [floor(i * in / out), ceil((i + 1) * in / out))."""
    return [range(i * size_in // size_out, -(-(i + 1) * size_in // size_out)) for i in range(size_out)]


def torch_decomposition(size_in: int, size_out: int) -> str:
    """AdaptiveAvgPool2d(size_out) on [1,2,size_in,size_in] as torch.export writes it when the windows are equal:
    Transpose to [H,W,N,C], GatherND of [OH,KH,OW,KW] positions, Transpose back, ReduceMean over the window axes."""
    rows = windows(size_in, size_out)
    k = len(rows[0])
    assert all(len(r) == k for r in rows)
    idx = np.array([[[[[rows[oh][kh], rows[ow][kw]] for kw in range(k)] for ow in range(size_out)] for kh in range(k)]
                    for oh in range(size_out)], np.int64)
    body = ("t = Transpose<perm=[2,3,0,1]>(x)\n g = GatherND(t, idx)\n b = Transpose<perm=[4,5,0,1,2,3]>(g)\n"
            " y = ReduceMean<keepdims=0>(b, axes)")
    return model_text(body, f"float[1,2,{size_in},{size_in}] x", "float y", idx=idx, axes=np.array([3, 5], np.int64))


def test_the_decomposed_pool_is_the_model_we_mean():
    import onnxruntime as ort
    model = as_model(torch_decomposition(4, 3))
    x = np.random.default_rng(4).standard_normal((1, 2, 4, 4)).astype(np.float32)
    (got,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    want = np.array([[[x[0, c][np.ix_(list(r), list(s))].mean() for s in windows(4, 3)] for r in windows(4, 3)]
                     for c in range(2)])
    np.testing.assert_allclose(got[0], want, rtol=1e-6)


def test_gathered_windows_become_one_batch_matmul():
    assert compiled_ops(torch_decomposition(4, 3)) == ["TRANSPOSE", "RESHAPE", "BATCH_MATMUL", "RESHAPE", "TRANSPOSE"]
