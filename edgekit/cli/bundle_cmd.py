"""`edgekit bundle MODEL -o NAME.ekb [--preprocess ...] [--labels FILE] [--sign KEY] [--encrypt --key-file FILE]`."""
from __future__ import annotations

import click
from rich.table import Table

from edgekit.cli.common import console, emit_json, handle_errors, json_option, out


@click.command("bundle")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The bundle to write (NAME.ekb).")
@click.option("--name", help="The bundle's name (default: the model file's stem).")
@click.option("--preprocess", "preprocess", multiple=True, metavar="KEY=VALUE|FILE",
              help="Input preprocessing, repeatable: resize=224x224, resize_method=bilinear|area|nearest, "
                   "color=rgb|bgr|gray, scale=1/255, mean=0.485,0.456,0.406, std=..., layout=NCHW, dtype=float32, "
                   "input=NAME, kind=image|tensor; or a .toml/.json file with [preprocess], [postprocess], labels.")
@click.option("--postprocess", "postprocess", multiple=True, metavar="KEY=VALUE",
              help="Output postprocessing, repeatable: softmax, top_k=5, output=NAME.")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class labels: a .txt file (one per line) or a .json list.")
@click.option("--sign", "sign", type=click.Path(dir_okay=False), metavar="KEY",
              help="Sign the manifest with this Ed25519 private key (NAME.key from edgekit keygen).")
@click.option("--encrypt", is_flag=True, help="Encrypt the model with AES-256-GCM (key from --key-file or $EDGEKIT_BUNDLE_KEY).")
@click.option("--key-file", type=click.Path(dir_okay=False), help="The AES key file (edgekit keygen -o NAME --aes).")
@click.option("--bench", is_flag=True, help="Benchmark the model here and record the figures and this machine in the manifest.")
@click.option("--bench-time", type=float, default=1.0, show_default=True, help="Seconds of timed runs for --bench.")
@click.option("--threads", type=int, default=None, help="Threads for --bench.")
@click.option("--force", is_flag=True, help="Allow the output to replace an input file (atomically).")
@json_option
@handle_errors
def command(model, output, name, preprocess, postprocess, labels, sign, encrypt, key_file, bench, bench_time, threads,
            force, json_path):
    """Pack MODEL (.onnx or .tflite) with a manifest into an .ekb bundle.

    The manifest records I/O names, dtypes, shapes and layouts, preprocessing, labels, the quantization
    summary and validation figures from the model's metadata, optional benchmark figures with their
    environment, the edgekit version and the SHA-256 of every file. --sign adds an Ed25519 signature of the
    manifest; --encrypt keeps the model encrypted at rest (edgekit.load decrypts it in memory only).
    """
    from edgekit.bundle.write import bundle
    from edgekit.processing import parse_options

    post = parse_options(postprocess) if postprocess else None
    with console.status(f"Bundling {model} …") as status:
        result = bundle(model, output, name=name, preprocess=list(preprocess) or None, postprocess=post, labels=labels, sign=sign,
                        encrypt=encrypt, key_file=key_file, bench=bench, bench_time=bench_time, threads=threads,
                        force=force, log=lambda msg: status.update(f"Bundling {model}: {msg} …"))
    _render(result)
    emit_json(result.as_dict(), json_path)


def _render(result) -> None:
    m = result.manifest
    table = Table(title=f"Bundle {m['name']} ({m['model']['format']} model, {m['model']['size']} bytes)")
    for col in ("", "name", "dtype", "shape", "layout"):
        table.add_column(col)
    for kind in ("inputs", "outputs"):
        for t in m[kind]:
            table.add_row(kind[:-1], t["name"], t["dtype"], "x".join(str(d) for d in t["shape"]), t.get("layout") or "")
    out.print(table)
    for key in ("preprocess", "postprocess"):
        if m.get(key):
            console.print(f"{key}: " + ", ".join(f"{k}={v}" for k, v in m[key].items()), soft_wrap=True)
    if m.get("labels"):
        console.print(f"labels: {len(m['labels'])} ({', '.join(m['labels'][:5])}{', …' if len(m['labels']) > 5 else ''})", soft_wrap=True)
    if m.get("benchmark"):
        lat = m["benchmark"]["latency"]
        console.print(f"benchmark: p50 {lat['p50_ms']:.3f} ms, p90 {lat['p90_ms']:.3f} ms over {lat['runs']} runs "
                      f"on {m['benchmark']['environment'].get('cpu')}", soft_wrap=True)
    if result.signed:
        console.print(f"signed: Ed25519, key id {m['signing']['public_key_id']}", soft_wrap=True)
    if result.encrypted:
        console.print(f"encrypted: AES-256-GCM, key id {m['encryption']['key_id']}", soft_wrap=True)
    console.print(f"[green]Wrote[/] {result.path}", soft_wrap=True)
