"""``leafnet_weights list | fetch NAME | import NAME FILE...``."""

from __future__ import annotations

import argparse
from pathlib import Path

from leafnet.errors import exit_on_user_error
from leafnet.models.weights.download import fetch
from leafnet.models.weights.sources import SOURCES, install
from leafnet.models.weights.store import KNOWN, installed
from leafnet.paths import weights_root


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnet_weights",
        description="Pretrained weights in LEAFNET_WEIGHTS: list them, download and convert "
        "them, or convert files downloaded elsewhere (offline clusters).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="what is installed, and what can be")
    for command, help_text in (("fetch", "download and convert"),
                               ("import", "convert files already on disk")):
        sub = commands.add_parser(command, help=help_text)
        sub.add_argument("name", choices=sorted(KNOWN))
        if command == "import":
            sub.add_argument("files", type=Path, nargs="+",
                             help="the original files (see 'leafnet_weights list')")
        sub.add_argument("--trust-pickle", action="store_true",
                         help="unpickle checkpoints with the full unpickler, which can run code "
                         "(only for files from the official source that leafnet's restricted "
                         "reader refuses)")
        sub.add_argument("--ema", action="store_true",
                         help="ldm-kl8-churches: take the checkpoint's EMA U-Net weights "
                         "(model_ema.*) instead of the raw ones LEAF fine-tunes")
    return parser


@exit_on_user_error("leafnet_weights")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print(f"LEAFNET_WEIGHTS = {weights_root()}")
        for name, folder in installed().items():
            state = f"installed at {folder}" if folder else "not installed"
            files = ", ".join(remote.filename for remote in SOURCES[name][0])
            print(f"  {name:<18} {state}\n  {'':<18} {KNOWN[name]}; original files: {files}")
        return
    options = {"unet_weights": "ema" if args.ema else "raw"}
    if args.command == "fetch":
        folder = fetch(args.name, args.trust_pickle, options=options)
    else:
        folder = install(args.name, args.files, args.trust_pickle, options=options)
    print(f"{args.name}: installed at {folder}")
